"""The DCGAN family's geometry, pure Python (the CLI validates sizes before torch is imported).

A generator starts from a ``start x start`` map and doubles it ``stages`` times with stride-2 layers, the
last of which draws RGB: ``size = start * 2**stages``. Powers of two start at 4 (32 px: 4, 8, 16, 32, as
in pytorch/examples); a pixel-art grid trains at its own side (24 px: 3, 6, 12, 24; 40 px: 5, 10, 20, 40).
"""

from __future__ import annotations

MIN_SIDE_PX = 12
MAX_SIDE_PX = 256


def start_and_stages(size_px: int) -> tuple[int, int]:
    """(start side, number of stride-2 stages) of a ``size_px`` generator; ValueError when none fits.

    The side is halved while it stays even and at least 6, so the start is 3, 4 or 5 (or another odd side
    from 7 up, kept as is when it cannot be halved), and at least 2 stages remain.
    """
    if not isinstance(size_px, int) or not MIN_SIDE_PX <= size_px <= MAX_SIDE_PX:
        raise ValueError(f"a generator side must be an integer from {MIN_SIDE_PX} to {MAX_SIDE_PX} px, got {size_px}")
    side, stages = size_px, 0
    while side % 2 == 0 and side >= 6 and side // 2 >= 3:
        side //= 2
        stages += 1
    if stages < 2 or side > 7:
        raise ValueError(
            f"{size_px} px is not a start side of 3 to 7 doubled at least twice (e.g. 24 = 3x8, 32 = 4x8, 40 = 5x8)"
        )
    return side, stages


def stage_count(size_px: int) -> int:
    """Number of generator widths (one per stage before the RGB layer); 3 at 24 and 32 px, 4 at 64 px."""
    return start_and_stages(size_px)[1]
