"""Decoding and normalization of every input kind, good and bad (cleaning.decode)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cleaning.decode import Decoded, DecodeOptions, Rejected, decode_bytes, parse_color

from .corpus import bad_files, encode, hidden_color_rgba, noise, pixel_art, png_bytes

GRAY = (128, 128, 128)


def ok(data: bytes, **kw) -> Decoded:
    result = decode_bytes(data, DecodeOptions(**{"size_px": 32, **kw}))
    assert isinstance(result, Decoded), result
    assert result.array.shape == (3, kw.get("size_px", 32), kw.get("size_px", 32))
    assert result.array.dtype == np.uint8
    return result


def pixel(result: Decoded, y: int, x: int) -> tuple[int, ...]:
    return tuple(int(v) for v in result.array[:, y, x])


@pytest.mark.parametrize("name", sorted(bad_files()))
def test_bad_inputs_are_rejected_with_their_reason(name: str) -> None:
    data, reason = bad_files()[name]
    result = decode_bytes(data, DecodeOptions(size_px=32, max_pixels=50_000_000))
    assert isinstance(result, Rejected)
    assert result.reason == reason, result
    assert result.detail


def test_file_too_large_is_rejected_before_decoding() -> None:
    result = decode_bytes(png_bytes(noise(64, 64)), DecodeOptions(size_px=32, max_bytes=100))
    assert isinstance(result, Rejected) and result.reason == "file-too-large"


def test_transparent_pixels_take_the_background_not_their_hidden_color() -> None:
    data = png_bytes(hidden_color_rgba())
    gray = ok(data, background=GRAY, resample="smooth")
    assert pixel(gray, 0, 0) == GRAY  # not the red hidden under alpha 0
    assert pixel(gray, 16, 16) == (0, 0, 255)
    white = ok(data, background=(255, 255, 255), resample="smooth")
    assert pixel(white, 0, 0) == (255, 255, 255)


def test_la_and_palette_transparency_are_composited() -> None:
    la = Image.new("LA", (32, 32), (200, 0))
    assert pixel(ok(png_bytes(la), background=(10, 20, 30)), 5, 5) == (10, 20, 30)
    p = Image.new("P", (32, 32), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.info["transparency"] = 1
    assert pixel(ok(png_bytes(p, transparency=1), background=(10, 20, 30)), 5, 5) == (10, 20, 30)


def test_cmyk_grayscale_and_16_bit_convert_correctly() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red
    r, g, b = pixel(ok(encode(cmyk, "TIFF")), 10, 10)
    assert r > 240 and g < 15 and b < 15
    gray = Image.new("L", (32, 32), 77)
    assert pixel(ok(png_bytes(gray)), 3, 3) == (77, 77, 77)
    arr16 = np.full((32, 32), 65535, np.uint16)
    arr16[:, 16:] = 32896  # 128 * 257
    deep = Image.fromarray(arr16)  # mode I;16
    out = ok(png_bytes(deep), resample="smooth")
    assert pixel(out, 5, 2) == (255, 255, 255)
    assert pixel(out, 5, 28) == (128, 128, 128)  # scaled, not clipped to 255


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"])
def test_every_raster_format_decodes_by_content(fmt: str) -> None:
    image = Image.new("RGB", (48, 48), (200, 40, 40))
    data = encode(image if fmt != "GIF" else image.convert("P"), fmt)
    r, g, b = pixel(ok(data), 16, 16)
    assert abs(r - 200) < 12 and abs(g - 40) < 12 and abs(b - 40) < 12


def test_animated_gif_takes_the_first_frame() -> None:
    frames = [Image.new("RGB", (40, 40), c).convert("P") for c in ((255, 0, 0), (0, 255, 0))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    r, g, _ = pixel(ok(data), 10, 10)
    assert r > 200 and g < 50


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (60, 30), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 30, 30))  # white on the left half
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    result = ok(encode(image, "JPEG", exif=exif.tobytes(), quality=95), fit="pad", resample="smooth")
    assert (result.width, result.height) == (30, 60)
    top, bottom = pixel(result, 4, 16), pixel(result, 28, 16)
    assert min(top) > 200 and max(bottom) < 60  # the white half is now on top


def test_pixel_art_is_upscaled_by_an_integer_factor_in_uniform_blocks() -> None:
    art = pixel_art(24, 24)
    result = ok(png_bytes(art), size_px=96)
    assert result.pixel_art
    blocks = result.array.reshape(3, 24, 4, 24, 4)
    assert (blocks == blocks[:, :, :1, :, :1]).all()  # every 4x4 block is one color
    assert (blocks[:, :, 0, :, 0] == np.asarray(art).transpose(2, 0, 1)).all()


def test_pixel_art_that_does_not_fill_the_size_is_padded_with_the_background() -> None:
    result = ok(png_bytes(pixel_art(24, 24)), size_px=64, background=(1, 2, 3))
    # factor 2 → 48 px, centered with 8 px of background on each side
    assert pixel(result, 0, 0) == (1, 2, 3) and pixel(result, 63, 63) == (1, 2, 3)
    inner = result.array[:, 8:56, 8:56].reshape(3, 24, 2, 24, 2)
    assert (inner == inner[:, :, :1, :, :1]).all()


def test_photos_are_downscaled_smoothly_and_flags_force_either_behaviour() -> None:
    photo = noise(300, 200, seed=3)
    result = ok(png_bytes(photo), size_px=64)
    assert not result.pixel_art
    forced = ok(png_bytes(pixel_art(24, 24)), size_px=96, resample="smooth")
    assert not forced.pixel_art
    blocks = forced.array.reshape(3, 24, 4, 24, 4).astype(int)
    assert (blocks != blocks[:, :, :1, :, :1]).any()  # smoothed edges are not uniform blocks
    assert ok(png_bytes(photo), size_px=32, resample="pixel").pixel_art


def test_fit_pad_keeps_the_whole_image_and_crop_fills_the_square() -> None:
    wide = Image.new("RGB", (100, 50), (255, 255, 255))
    padded = ok(png_bytes(wide), fit="pad", background=(0, 0, 0), resample="smooth")
    assert pixel(padded, 0, 16) == (0, 0, 0) and pixel(padded, 16, 16) == (255, 255, 255)
    cropped = ok(png_bytes(wide), fit="crop", background=(0, 0, 0), resample="smooth")
    assert pixel(cropped, 0, 16) == (255, 255, 255)


SVG_RECT = (
    '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
    'width="64" height="64" viewBox="0 0 64 64">{extra}<rect width="64" height="64" fill="#00ff00"/></svg>'
)


def test_svg_is_rasterized() -> None:
    result = ok(SVG_RECT.format(extra="").encode())
    assert pixel(result, 10, 10) == (0, 255, 0)


def test_svg_scripts_and_external_references_do_nothing(tmp_path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(Image.new("RGB", (64, 64), (255, 0, 0))))
    extra = (
        '<script>document.body.innerHTML = "x"</script>'
        f'<image href="http://127.0.0.1:9/evil.png" width="64" height="64"/>'
        f'<image xlink:href="file://{secret}" width="64" height="64"/>'
    )
    svg = SVG_RECT.format(extra="").replace("</svg>", extra + "</svg>")
    result = ok(svg.encode())
    assert pixel(result, 10, 10) == (0, 255, 0)  # the local file was not drawn over the rect


def test_parse_color() -> None:
    assert parse_color("#102030") == (16, 32, 48)
    with pytest.raises(ValueError):
        parse_color("red")
