"""Which decoder a compressed DICOM film goes through, where pydicom's first choice is not the
fastest installed one that gives the same pixels:

- JPEG-LS: CharLS (pyjpegls) rather than libjpeg (pylibjpeg-libjpeg), which pydicom tries
  first: on a 2048 px 12-bit film 66 ms against 229.
- JPEG 2000: OpenJPEG through imagecodecs, whose decoder runs the code-blocks on several
  threads (pylibjpeg-openjpeg and Pillow run the same library on one): on a 2048 px 12-bit
  lossless film 213 ms on two threads against 381.
- HTJ2K (High-Throughput JPEG 2000, its three syntaxes): the same OpenJPEG through imagecodecs
  on several threads, where pydicom has only pylibjpeg-openjpeg: on a 2048 px 12-bit lossless
  film 36 ms on two threads against 73. OpenJPEG decodes HTJ2K from its release 2.5; an
  imagecodecs built on an older one is left out for these syntaxes. (OpenJPH, imagecodecs'
  other HTJ2K decoder, is not used: on damaged codestreams it printed its error and returned
  an image anyway.)

Each gives the pixels, bit for bit, that pydicom's first choice gives (JPEG-LS and OpenJPEG
decode deterministically; the tests compare the two on phantoms and real films). The JPEG 2000
and HTJ2K decoder is a pydicom decoding plugin of ours (pydicom's plugin contract: `is_available`,
`DECODER_DEPENDENCIES` and the frame function), added to pydicom's JPEG 2000 decoders after
theirs, so pydicom's own order for anyone else is unchanged. Without imagecodecs, JPEG 2000
and HTJ2K go through pydicom's order as before. Every other syntax does too: JPEG baseline decodes
faster with Pillow than with libjpeg, but to different pixels (the two IDCTs round
differently), so it is left as it is.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["DECODER_DEPENDENCIES", "JPEG2000_PLUGIN", "decode_options", "is_available"]

JPEG2000_PLUGIN = "lesionloc-imagecodecs"
_JPEG2000 = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")  # lossless only; lossy too
# HTJ2K lossless only, lossless only with RPCL progression, lossless or lossy
_HTJ2K = ("1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")
_JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")  # lossless; near-lossless
# pydicom's plugin contract: what a plugin needs for each syntax it decodes
DECODER_DEPENDENCIES = {syntax: ("imagecodecs",) for syntax in (*_JPEG2000, *_HTJ2K)}
_ADDING = threading.Lock()  # pydicom's add_plugin is not thread-safe (a batch reads on a thread)


def is_available(syntax: str) -> bool:
    """pydicom's plugin contract: whether this plugin can decode `syntax` here."""
    if syntax not in _JPEG2000 and syntax not in _HTJ2K:
        return False
    try:
        import imagecodecs
    except ImportError:
        return False
    if not (getattr(imagecodecs, "JPEG2K", None) and imagecodecs.JPEG2K.available):
        return False
    return syntax in _JPEG2000 or _decodes_htj2k(imagecodecs.jpeg2k_version())


def _decodes_htj2k(version: str) -> bool:
    """Whether imagecodecs' OpenJPEG ('openjpeg 2.5.4') decodes HTJ2K: from release 2.5."""
    try:
        major, minor = (int(part) for part in version.split()[-1].split(".")[:2])
    except (ValueError, IndexError):
        return False
    return (major, minor) >= (2, 5)


def decode_options(decoder: Any, syntax: str, threads: int) -> dict[str, Any]:
    """Keyword arguments for pydicom's `decoder.as_array` that pick the decoder for `syntax`
    (none: pydicom's own order); a JPEG 2000 or HTJ2K film is decoded on `threads` threads."""
    if (syntax in _JPEG2000 or syntax in _HTJ2K) and _jpeg2000_plugin(decoder):
        return {"decoding_plugin": JPEG2000_PLUGIN, "decode_threads": max(1, int(threads))}
    if syntax in _JPEG_LS and "pyjpegls" in decoder.available_plugins:
        return {"decoding_plugin": "pyjpegls"}
    return {}


def _jpeg2000_plugin(decoder: Any) -> bool:
    """Add the plugin to pydicom's decoder once; whether it can be used."""
    with _ADDING:
        try:
            decoder.add_plugin(JPEG2000_PLUGIN, (__name__, "_decode_frame"))
        except ValueError:  # added before (available or not)
            pass
    return JPEG2000_PLUGIN in decoder.available_plugins


def _decode_frame(src: bytes, runner: Any) -> bytes:
    """pydicom's plugin contract: one frame's codestream to the bytes of its samples, in the
    container pylibjpeg-openjpeg uses (from the codestream's precision, which pydicom has read
    into `j2k_precision`), so that pydicom's corrections after decoding (sign, unused bits)
    see the same input whichever plugin decoded it."""
    import imagecodecs

    image = imagecodecs.jpeg2k_decode(src, numthreads=int(runner.get_option("decode_threads", 1)))
    if image.ndim != 2:
        raise ValueError(f"the codestream holds {image.shape[-1]} components; a greyscale film "
                         "has one")
    precision = runner.get_option("j2k_precision", runner.bits_stored)
    bits = 8 if precision <= 8 else 16 if precision <= 16 else 32
    runner.set_option("bits_allocated", bits)
    kind = "i" if image.dtype.kind == "i" else "u"
    return image.astype(f"{kind}{bits // 8}", copy=False).tobytes()
