"""Rollout videos: GIF through Pillow (installed with matplotlib), MP4 through imageio with its ffmpeg plugin."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["write_video"]


def write_video(path, frames, fps: int = 10) -> Path:
    """Write RGB frames [(height, width, 3) uint8] to ``path`` (.gif or .mp4, by extension), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise ValueError(f"path: expected a .gif or .mp4 file name, got {str(path)!r}")
    frames = [np.asarray(f, dtype=np.uint8) for f in frames]
    if not frames or any(f.ndim != 3 or f.shape[-1] != 3 or f.shape != frames[0].shape for f in frames):
        raise ValueError("frames: expected a non-empty list of equal (height, width, 3) images")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{suffix}")
    if suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0,
                       optimize=True)
    else:
        try:
            import imageio.v3 as iio

            iio.imwrite(tmp, np.stack(frames), fps=fps, codec="libx264")
        except (ImportError, ValueError, OSError) as error:
            tmp.unlink(missing_ok=True)
            raise ImportError(f"writing .mp4 needs imageio with ffmpeg: pip install imageio[ffmpeg] "
                              f"(or write a .gif) ({error})") from None
    os.replace(tmp, path)
    return path
