"""to_mnist / load_image: every mode, polarity, lighting, noise, and every kind of bad input.

No model and no TensorFlow here: a preprocessed view is judged by how closely it matches
the view of the same clean shape, and by MNIST's conventions.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import realistic_images as ri
from PIL import Image, ImageFilter

from digitctl.errors import ImageError, NoDigitFound
from digitctl.imaging import decode_grey, load_image, stroke_width, to_mnist


def png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def seven() -> np.ndarray:
    return ri.draw_digit(7)


@pytest.fixture(scope="module")
def reference(seven: np.ndarray) -> np.ndarray:
    """The view of a clean white-on-black 7: what every other rendering should give."""
    return to_mnist(Image.fromarray((seven * 255).astype(np.uint8), "L"))


def test_view_follows_mnist_conventions(reference: np.ndarray) -> None:
    assert reference.shape == (28, 28) and reference.dtype == np.float32
    assert reference.min() >= 0.0 and reference.max() == pytest.approx(1.0)
    rows = np.where(reference.max(axis=1) > 0)[0]
    cols = np.where(reference.max(axis=0) > 0)[0]
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == 20  # fitted to 20×20
    mass = reference.sum()
    cy = (reference.sum(axis=1) * np.arange(28)).sum() / mass
    cx = (reference.sum(axis=0) * np.arange(28)).sum() / mass
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5  # centred by mass
    assert reference[:2].sum() == 0 and reference[:, :2].sum() == 0  # black border


def test_aspect_ratio_is_kept() -> None:
    view = to_mnist(Image.fromarray((ri.draw_digit(1) * 255).astype(np.uint8), "L"))
    cols = np.where(view.max(axis=0) > 0.2)[0]
    rows = np.where(view.max(axis=1) > 0.2)[0]
    assert rows[-1] - rows[0] + 1 >= 19
    assert cols[-1] - cols[0] + 1 <= 10  # a "1" stays narrow, not stretched to 20


def _modes(seven: np.ndarray) -> dict[str, bytes | Image.Image]:
    ink = (seven * 255).astype(np.uint8)
    dark_on_light = 255 - ink
    rgba_alpha_only = np.zeros((*ink.shape, 4), np.uint8)
    rgba_alpha_only[..., 3] = ink  # black ink, transparent background: ink only in alpha
    rgba_white = np.zeros((*ink.shape, 4), np.uint8)
    rgba_white[..., :3] = 255
    rgba_white[..., 3] = ink
    la = np.stack([np.zeros_like(ink), ink], axis=-1)
    palette = Image.fromarray(dark_on_light, "L").convert("P")
    palette_transparent = Image.fromarray(np.where(ink > 127, 1, 0).astype(np.uint8), "P")
    palette_transparent.putpalette([255, 255, 255, 0, 0, 120] + [0] * 762)
    return {
        "L": png(Image.fromarray(ink, "L")),
        "L dark on light": png(Image.fromarray(dark_on_light, "L")),
        "RGB": png(Image.fromarray(np.stack([dark_on_light] * 3, -1), "RGB")),
        "RGBA ink only in alpha": png(Image.fromarray(rgba_alpha_only, "RGBA")),
        "RGBA white ink": png(Image.fromarray(rgba_white, "RGBA")),
        "LA": png(Image.fromarray(la, "LA")),
        "P": png(palette),
        "P transparent": png(palette_transparent, transparency=0),
        "I;16": png(Image.fromarray(dark_on_light.astype(np.uint16) * 257)),
        "CMYK": Image.fromarray(np.stack([dark_on_light] * 3, -1), "RGB").convert("CMYK"),
        "1": png(Image.fromarray(ink > 127).convert("1")),
        "JPEG": _jpeg(Image.fromarray(dark_on_light, "L")),
    }


def _jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "mode",
    [
        "L",
        "L dark on light",
        "RGB",
        "RGBA ink only in alpha",
        "RGBA white ink",
        "LA",
        "P",
        "P transparent",
        "I;16",
        "CMYK",
        "1",
        "JPEG",
    ],
)
def test_every_mode_gives_the_same_view(
    mode: str, seven: np.ndarray, reference: np.ndarray
) -> None:
    view = to_mnist(_modes(seven)[mode])
    assert similarity(view, reference) > 0.9


def test_animated_gif_uses_the_first_frame(seven: np.ndarray, reference: np.ndarray) -> None:
    one = Image.fromarray((ri.draw_digit(1) * 255).astype(np.uint8), "L")
    first = Image.fromarray((seven * 255).astype(np.uint8), "L")
    buffer = io.BytesIO()
    first.save(buffer, "GIF", save_all=True, append_images=[one], duration=100, loop=0)
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 2
    assert similarity(to_mnist(buffer.getvalue()), reference) > 0.9


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(
    orientation: int, seven: np.ndarray, reference: np.ndarray
) -> None:
    upright = Image.fromarray((255 - seven * 255).astype(np.uint8), "L")
    stored = upright.transpose(ri._STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(stored, exif=exif.tobytes())
    assert load_image(data).size == upright.size
    assert similarity(to_mnist(data), reference) > 0.9


@pytest.mark.parametrize("orientation", [1, 6])
def test_colour_jpeg_is_decoded_to_the_grey_of_its_colours(orientation: int) -> None:
    """decode_grey reads a colour JPEG's luma alone: the grey levels that converting the
    fully decoded colours gives, turned by its EXIF orientation; a PIL image passed in is
    never turned in place."""
    # Blue ink on cream paper (saturated noise would differ by the clipping of its colours).
    ink = np.asarray(Image.fromarray((ri.draw_digit(4) * 255).astype(np.uint8)).resize((90, 60)))
    paper, blue = np.array([235, 225, 200], np.float32), np.array([30, 50, 160], np.float32)
    share = (ink.astype(np.float32) / 255)[..., None]
    colours = Image.fromarray((paper * (1 - share) + blue * share).astype(np.uint8), "RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    colours.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    data = buffer.getvalue()
    expected = np.asarray(load_image(data).convert("L"), dtype=np.float32) / 255
    grey, size = decode_grey(data)
    assert grey.shape == expected.shape and size == (expected.shape[1], expected.shape[0])
    assert float(np.abs(grey - expected).max()) <= 2.5 / 255
    opened = Image.open(io.BytesIO(data))
    decode_grey(opened)
    assert opened.size == (90, 60) and opened.mode == "RGB"


def test_sources_path_bytes_file_and_image(tmp_path: Path, seven: np.ndarray) -> None:
    data = _modes(seven)["L"]
    path = tmp_path / "seven.png"
    path.write_bytes(data)
    views = [
        to_mnist(path),
        to_mnist(str(path)),
        to_mnist(data),
        to_mnist(io.BytesIO(data)),
        to_mnist(Image.open(io.BytesIO(data))),
    ]
    for view in views[1:]:
        np.testing.assert_allclose(view, views[0])


@pytest.mark.parametrize("style", ri.STYLES)
def test_realistic_renderings_match_the_clean_view(
    style: str, seven: np.ndarray, reference: np.ndarray
) -> None:
    rng = np.random.default_rng(3)
    for _ in range(2 if style != "large" else 1):
        data = ri.render(style, seven, rng)
        # A rotated photo of the 7 scores 0.74-0.77 against the upright reference.
        assert similarity(to_mnist(data), reference) > 0.72, style


def test_uneven_lighting_does_not_eat_the_digit(seven: np.ndarray, reference: np.ndarray) -> None:
    # Paper that goes from bright to half as bright, ink darker than the dim side's paper.
    h, w = 300, 400
    light = np.linspace(1.0, 0.45, w, dtype=np.float32)[None, :].repeat(h, 0)
    shape = np.zeros((h, w), np.float32)
    digit = np.asarray(Image.fromarray((seven * 255).astype(np.uint8)).resize((200, 200)))
    shape[50:250, 100:300] = digit / 255
    grey = (0.95 * (1 - shape) + 0.15 * shape) * light
    view = to_mnist(Image.fromarray((grey * 255).astype(np.uint8), "L"))
    assert similarity(view, reference) > 0.85


def test_thin_strokes_are_thickened_to_mnist_width() -> None:
    thin = ri.draw_digit(7, size=400, width=3)  # a 3-pixel pen on a 400-pixel canvas
    view = to_mnist(Image.fromarray((thin * 255).astype(np.uint8), "L"))
    assert stroke_width(view) >= 1.8
    assert view.sum() > 25  # not a faint trace


def _reference_stroke_width(ink: np.ndarray) -> float:
    """Twice the ink area over its boundary: pixels with a 4-neighbour that is not ink,
    outside the image counting as no ink (the definition, spelled out)."""
    mask = ink > 0.5
    padded = np.pad(mask, 1)
    interior = (
        padded[1:-1, 1:-1]
        & padded[:-2, 1:-1]
        & padded[2:, 1:-1]
        & padded[1:-1, :-2]
        & padded[1:-1, 2:]
    )
    area = int(mask.sum())
    return 2.0 * area / max(int((mask & ~interior).sum()), 1) if area else 0.0


def test_stroke_width_counts_the_image_edge_as_a_boundary() -> None:
    # Ink filling the whole image: its outer ring is its boundary (10×10 → 36 pixels).
    assert stroke_width(np.ones((10, 10), np.float32)) == pytest.approx(200 / 36)
    bar = np.zeros((9, 30), np.float32)
    bar[3:6, 5:25] = 1.0  # a 3-pixel bar: 60 pixels, 18 of them inside
    assert stroke_width(bar) == pytest.approx(120 / 42)
    assert stroke_width(np.zeros((5, 5), np.float32)) == 0.0
    rng = np.random.default_rng(3)
    for _ in range(50):
        h, w = rng.integers(1, 40, size=2)
        blob = _blobs(rng.random((h, w)).astype(np.float32))
        assert stroke_width(blob) == pytest.approx(_reference_stroke_width(blob))


def _blobs(noise: np.ndarray) -> np.ndarray:
    """Smoothed noise: blobs and strokes of many widths, some touching the edges."""
    import cv2

    return cv2.GaussianBlur(noise, (0, 0), 1.5) if min(noise.shape) > 3 else noise


def test_noise_specks_do_not_shift_the_crop(seven: np.ndarray, reference: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    grey = np.full((300, 300), 0.9, np.float32)
    digit = np.asarray(Image.fromarray((seven * 255).astype(np.uint8)).resize((150, 150))) / 255
    grey[75:225, 75:225] -= 0.75 * digit
    grey += rng.normal(0, 0.04, grey.shape).astype(np.float32)
    speck = rng.integers(0, 300, size=(20, 2))
    grey[speck[:, 0], speck[:, 1]] = 0.0  # isolated black dots (dust)
    view = to_mnist(Image.fromarray((np.clip(grey, 0, 1) * 255).astype(np.uint8), "L"))
    assert similarity(view, reference) > 0.85


@pytest.mark.parametrize(
    "grey",
    [
        np.full((64, 64), 255, np.uint8),  # white paper
        np.zeros((64, 64), np.uint8),  # black
        np.full((64, 64), 128, np.uint8),  # grey
        np.clip(np.random.default_rng(0).normal(200, 6, (200, 200)), 0, 255).astype(np.uint8),
        np.tile(np.linspace(120, 230, 300), (200, 1)).astype(np.uint8),  # lit, no ink
    ],
    ids=["white", "black", "grey", "noisy-paper", "gradient"],
)
def test_blank_images_have_no_digit(grey: np.ndarray) -> None:
    with pytest.raises(NoDigitFound, match="no digit found"):
        to_mnist(Image.fromarray(grey, "L"))


def test_transparent_canvas_without_strokes_has_no_digit() -> None:
    with pytest.raises(NoDigitFound, match="no digit found"):
        to_mnist(png(Image.new("RGBA", (200, 200), (0, 0, 0, 0))))


# ---- bad input -------------------------------------------------------------------------
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width``×``height`` pixels (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_bad_inputs_raise_one_clear_error(tmp_path: Path, seven: np.ndarray) -> None:
    good = _modes(seven)["L"]
    cases = {
        "missing.png": (None, "does not exist"),
        "empty.png": (b"", "empty"),
        "truncated.png": (good[: len(good) // 2], "truncated or corrupt"),
        "text.png": (b"this is not an image\n", "not an image format"),
        "tiny.png": (png(Image.new("L", (1, 1), 255)), "too small"),
        "bomb.png": (_png_header_only(40000, 40000), "decompression bomb"),
        "drawing.svg": (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image format"),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ImageError, match=expected) as info:
            to_mnist(path)
        message = str(info.value)
        assert "\n" not in message and name in message


def test_big_but_plausible_image_is_accepted() -> None:
    assert to_mnist(ri.large(ri.draw_digit(4), np.random.default_rng(1))).shape == (28, 28)


def test_a_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


def test_preprocessing_imports_no_tensorflow() -> None:
    code = (
        "import sys, digitctl.imaging, digitctl.inference, digitctl.export; "
        "heavy = [m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_small_digit_under_strong_light_gradient(seven: np.ndarray, reference: np.ndarray) -> None:
    # The lighting spans more grey levels than the ink's contrast, and the ink covers
    # ~0.2% of the frame: the image's extremes say nothing about polarity.
    h, w = 600, 800
    # Mostly dim paper that brightens sharply at one edge: the border's median sits near
    # the darkest pixels, so "paper near the dark end" would wrongly say light ink.
    light = (0.5 + 0.45 * np.linspace(0, 1, w, dtype=np.float32) ** 3)[None, :].repeat(h, 0)
    shape = np.zeros((h, w), np.float32)
    digit = np.asarray(Image.fromarray((seven * 255).astype(np.uint8)).resize((70, 70))) / 255
    shape[265:335, 365:435] = digit
    grey = light * (1 - 0.55 * shape)
    view = to_mnist(Image.fromarray((grey * 255).astype(np.uint8), "L"))
    assert similarity(view, reference) > 0.85


def test_shading_the_paper_fit_missed_does_not_hide_the_ink() -> None:
    # When the paper estimate misses shading (bands of shadow, a heavy digit in a thick
    # box pulling the fit), the leftover spreads the paper side wide: as "noise" it hid
    # every stroke. Measured between neighbouring pixels, the noise is the pixels' own.
    from digitctl.inkmap import SHADED_FLOOR, _bright_ink, _pixel_noise

    rng = np.random.default_rng(0)
    cells = rng.uniform(-0.25, 0.1, (5, 5)).astype(np.float32)
    signal = np.asarray(Image.fromarray(cells, "F").resize((200, 200), Image.Resampling.BILINEAR))
    signal = signal + rng.normal(0, 0.005, signal.shape).astype(np.float32)
    signal[60:140, 90:110] = 0.5  # a stroke, darker than the paper by 0.5
    assert _bright_ink(signal, True, 1.0) is None
    found = _bright_ink(signal, True, 1.0, _pixel_noise(signal), SHADED_FLOOR)
    assert found is not None
    ink = found.ink > 0.3
    assert ink[60:140, 90:110].mean() > 0.95 and ink.sum() < 1.2 * 80 * 20


@pytest.mark.parametrize("side", [56, 240])
def test_a_sharp_shadow_across_the_paper_is_not_ink(side: int, seven: np.ndarray) -> None:
    # A phone's shadow: the right 40% of the paper a quarter darker, with a sharp edge
    # that crosses the digit. The smooth paper fit cannot follow it (and a small crop has
    # one paper level), so the shadow stood out like ink and framed the digit.
    from digitctl.inkmap import ink_maps

    grey = np.full((side, side), 0.9, np.float32)
    grey[:, int(0.6 * side) :] *= 0.75
    size = int(0.6 * side)
    digit = np.asarray(Image.fromarray((seven * 255).astype(np.uint8)).resize((size, size)))
    top = (side - size) // 2
    grey[top : top + size, top : top + size] *= 1 - 0.75 * (digit / np.float32(255))
    ink = ink_maps(grey)[0].ink
    digit_mask = np.zeros_like(ink, bool)
    digit_mask[top : top + size, top : top + size] = digit > 128
    grown = np.asarray(Image.fromarray(digit_mask).filter(ImageFilter.MaxFilter(7)))
    shadow_only = np.zeros_like(ink, bool)
    shadow_only[:, int(0.6 * side) + 2 :] = True
    shadow_only &= ~grown
    assert ink[digit_mask].mean() > 0.5  # the digit is ink
    assert ink[shadow_only].mean() < 0.05  # the shadow is not


def test_a_thin_one_on_a_small_dark_canvas_is_ink() -> None:
    # Under 5% of the pixels are ink: the small crop's paper level must not be taken
    # from percentiles that both fall on the paper.
    from PIL import ImageDraw

    from digitctl.inkmap import ink_maps

    canvas = Image.new("L", (60, 60), 0)
    ImageDraw.Draw(canvas).line((22, 46, 34, 14), fill=255, width=2)
    maps = ink_maps(np.asarray(canvas, np.float32) / 255)
    assert not maps[0].dark_ink
    assert float(maps[0].ink.max()) > 0.9 and (maps[0].ink > 0.5).sum() > 40


def test_numpy_arrays_are_sources(seven: np.ndarray) -> None:
    grey = (seven * 255).astype(np.uint8)
    expected = to_mnist(Image.fromarray(grey, "L"))
    rgb = np.stack([grey] * 3, axis=-1)
    rgba = np.dstack([rgb, np.full_like(grey, 255)])
    sources = [grey, grey[:, :, None], seven.astype(np.float64), seven.astype(np.float32)]
    sources += [rgb, rgba, rgb / 255.0, rgba.astype(np.float32) / 255, grey > 127]
    for source in sources:
        assert similarity(to_mnist(source), expected) > 0.97, (source.dtype, source.shape)
    assert decode_grey(rgb)[1] == (grey.shape[1], grey.shape[0])


@pytest.mark.parametrize(
    "source",
    [3, 2.5, None, [[0, 255]], {"image": b""}, np.zeros((4, 40, 40)), np.zeros((30, 30, 2))],
    ids=["int", "float", "None", "list", "dict", "4-channel-first", "2-channel"],
)
def test_anything_else_is_a_type_error_naming_what_is_accepted(source: object) -> None:
    with pytest.raises(TypeError, match=r"cannot read .*(NumPy array|H×W)"):
        decode_grey(source)  # type: ignore[arg-type]


def test_arrays_of_other_types_or_ranges_are_refused() -> None:
    with pytest.raises(TypeError, match="uint8, or float in"):
        decode_grey(np.zeros((30, 30), dtype=np.int64))
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        decode_grey(np.full((30, 30), 255.0))
