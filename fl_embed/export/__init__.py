"""SavedModel export of an embedder, with the section 3.5 test-time preprocessing inside the graph.

Two serving signatures:
  - `serving_default`: `images` = tf.string [batch] of encoded JPEG/PNG bytes -> `embeddings`. Decoding,
    channel conversion, resize to `resize_to` x `resize_to` (aspect ratio not kept, as the paper does),
    a center `image_size` crop and the backbone's pixel scaling all run in the graph, so a client
    sends raw bytes.
  - `embed_images`: `images` = float32 [batch, image_size, image_size, channels], already scaled ->
    `embeddings`.

Layout (TF Serving's): `export_dir` is a base directory of numbered versions,

    export/
      1000/  saved_model.pb  variables/  assets/  fingerprint.pb  fl_embed.json
      2000/  ...

each version (the global step) written into a temporary `.tmp-*` entry of `export_dir` and renamed
to its number once complete: a single rename, so a kill at any moment leaves every version
either complete or absent, and the previous versions stay servable. `fl_embed.json` records the
preprocessing. TF Serving's model server (and `saved_model_cli` on a version) read the
directory as it is; `load_embedder` takes the base (latest version) or a version directory.

Encoded images: an image with transparency (PNG with alpha or a transparent palette) is
composited on `background` (default white, 255, as a browser shows it) before the channel
conversion; JPEG and PNG headers are read first and images above `max_pixels` pixels are
refused before any decoding allocates them.
"""

from fl_embed.export.decoding import (
    BACKGROUND,
    MAX_PIXELS,
    DecodeOptions,
    decode_image,
)
from fl_embed.export.loader import LoadedEmbedder, load_embedder
from fl_embed.export.module import (
    IMAGES_SIGNATURE,
    INPUT_KEY,
    OUTPUT_KEY,
    SERVING_SIGNATURE,
    EmbedderModule,
)
from fl_embed.export.writer import (
    KEEP_EXPORTS,
    METADATA_FILE,
    export_saved_model,
    export_versions,
    latest_export,
)

__all__ = [
    "BACKGROUND",
    "IMAGES_SIGNATURE",
    "INPUT_KEY",
    "KEEP_EXPORTS",
    "MAX_PIXELS",
    "METADATA_FILE",
    "OUTPUT_KEY",
    "SERVING_SIGNATURE",
    "DecodeOptions",
    "EmbedderModule",
    "LoadedEmbedder",
    "decode_image",
    "export_saved_model",
    "export_versions",
    "latest_export",
    "load_embedder",
]
