"""Checkpoint files: tensors in safetensors, everything else as JSON in its header.

A checkpoint is ONE ``.safetensors`` file, so a save is a single atomic rename: the data goes
to a temporary file in the same folder, is flushed to disk, then replaces the target. A crash
at any moment leaves either the old file or the new one, never a half-written one. Loading
parses only tensors and JSON — nothing in the file can run code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "velora-checkpoint"
VERSION = 1
METADATA_KEY = "velora"


def atomic_write(path: Path, write: Any) -> Path:
    """Call ``write(tmp_path)`` then move the finished file over ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor],
                    metadata: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-able ``metadata`` to ``path`` atomically."""
    header = {"format": FORMAT, "version": VERSION, **metadata}
    blob = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    text = json.dumps(header)
    return atomic_write(Path(path), lambda tmp: save_file(blob, str(tmp),
                                                          metadata={METADATA_KEY: text}))


def _read_header(path: Path) -> dict[str, Any]:
    """The safetensors JSON header of ``path`` (tensor entries and ``__metadata__``), read
    without touching the tensor data; ``ValueError`` if it is not one."""
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if size <= 0 or size > 100_000_000 or size + 8 > path.stat().st_size:
                raise ValueError("bad header length")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
    except (ValueError, UnicodeDecodeError) as err:
        raise _not_a_checkpoint(path, err) from err
    return header


def _not_a_checkpoint(path: Path, err: Exception) -> ValueError:
    return ValueError(f"{str(path)!r} is not a velora checkpoint (a safetensors file with a "
                      f"velora header): it may be truncated, corrupted or of another "
                      f"format ({err})")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON header of a velora checkpoint, validated; ``ValueError`` if it is not one."""
    path = Path(path)
    header = _read_header(path)
    try:
        text = header["__metadata__"][METADATA_KEY]
        meta = json.loads(text)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise _not_a_checkpoint(path, err) from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a velora checkpoint (format "
                         f"{meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") != VERSION:
        raise ValueError(f"checkpoint {str(path)!r} has format version {meta.get('version')!r}; "
                         f"this velora reads version {VERSION}")
    return meta


def read_tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """``{tensor name: shape}`` of a checkpoint, from its header alone: what the file holds
    can be checked before anything is loaded or built."""
    path = Path(path)
    shapes = {}
    for name, entry in _read_header(path).items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise _not_a_checkpoint(path, ValueError(f"tensor {name!r} has no valid shape"))
        shapes[name] = tuple(shape)
    return shapes


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(tensors, metadata)``."""
    meta = read_metadata(path)
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"checkpoint {str(path)!r} is truncated or corrupted: {err}") from err
    return tensors, meta
