"""Writing a file so that a reader sees the old content or the new one, never half of either."""

import os
import tempfile


def atomic_write_text(path: str, text: str) -> None:
    """Writes `text` to `path` through a temporary sibling that is synced, then renamed.

    The parent directory is created if missing. If writing fails, the previous file (if any) is
    left as it was and the temporary file is removed.

    Args:
      path: the file to write.
      text: its whole new content.
    """
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
