"""The Python API: `Localizer.load(bundle).localize(image, report)` runs one image pass and one
batched text pass per study (split by sentence length only where padding would cost more than
another run) and grounds every finding sentence (or query) on the image."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from lesionloc_runtime.bundle import CARD_NAME, ModelBundle, check_image_size, check_patch_grid
from lesionloc_runtime.errors import BundleError, ReportError
from lesionloc_runtime.geometry import Geometry
from lesionloc_runtime.heatmap import Heatmap, local_alignment_scores, similarity_grid, smooth_grid
from lesionloc_runtime.imageio import Radiograph, import_dicom_stack, read_image
from lesionloc_runtime.openvino_engine import image_engine_for
from lesionloc_runtime.preprocess import EIGHT_BIT, PreprocessedImage, preprocess
from lesionloc_runtime.results import SentenceResult, StudyResult
from lesionloc_runtime.sentence_cache import DEFAULT_ENTRIES, CachedText, SentenceCache
from lesionloc_runtime.sessions import OnnxEncoder, default_threads
from lesionloc_runtime.text import Report, Sentence, query_sentences, read_report
from lesionloc_runtime.tokens import SentenceTokenizer, TextKey, encode_windows, prepare_text

__all__ = [
    "DEMO_BUNDLE",
    "DEMO_EXAMPLES",
    "EncodedImage",
    "Encoder",
    "Localizer",
    "PreparedStudy",
    "demo_bundle_path",
    "study_sentences",
]

_PACKAGE_DIR = Path(__file__).resolve().parent
DEMO_BUNDLE = _PACKAGE_DIR / "demo" / "bundle"
DEMO_EXAMPLES = _PACKAGE_DIR / "demo" / "examples"
_GROUND_CHOICES = ("findings", "all")
_log = logging.getLogger(__name__)
_T = TypeVar("_T")


def study_sentences(report: Report | None, queries: Sequence[str] = ()) -> list[Sentence]:
    """What a study grounds: its report's sentences, then the free-text queries."""
    sentences: list[Sentence] = list(report.sentences) if report is not None else []
    return sentences + (list(query_sentences(queries)) if queries else [])


def demo_bundle_path() -> Path:
    if not (DEMO_BUNDLE / CARD_NAME).is_file():
        raise BundleError(
            f"the embedded demo model is not installed at {DEMO_BUNDLE}; pass --model BUNDLE or "
            "build it with scripts/make_demo_model.sh"
        )
    return DEMO_BUNDLE


@dataclass(frozen=True)
class EncodedImage:
    """One image pass: the unit global embedding, the (h, w, D) patch grid as the bundle's
    similarity takes it (unit cells for "cosine", raw for "dot" and "global-share"), and the
    transform (letterbox or crop)."""

    global_embed: np.ndarray
    patches: np.ndarray
    letterbox: Geometry
    window: tuple[float, float]


@dataclass(frozen=True)
class PreparedStudy:
    """A study up to the encoders (`Localizer.prepare`): the radiograph, its report, the
    sentences to ground, the encoder input, and how long reading and preprocessing took."""

    radiograph: Radiograph
    report: Report | None
    report_source: str | None
    sentences: list[Sentence]
    prep: PreprocessedImage
    timings_ms: dict[str, float]


def _timed(step: Callable[..., _T], *args: object) -> tuple[_T, float]:
    start = time.perf_counter()
    return step(*args), (time.perf_counter() - start) * 1e3


def _l2(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


class Encoder(Protocol):
    """What the localizer needs of an encoder: ONNX sessions, or torch modules for parity."""

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Localizer:
    """Composes an image encoder, a text encoder and the bundle's pre/post-processing.
    `Localizer.load` opens a bundle's ONNX graphs (sessions created once per process)."""

    def __init__(
        self,
        bundle: ModelBundle,
        image_encoder: Encoder,
        text_encoder: Encoder,
        tokenizer: SentenceTokenizer,
        sentence_cache: int = DEFAULT_ENTRIES,
        threads: int | None = None,
        side_by_side: bool = False,
    ) -> None:
        self.bundle = bundle
        # this process's share of the cores: the sessions' threads, and a JPEG 2000 film's
        self.threads = threads or default_threads()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.tokenizer = tokenizer
        self.sentence_cache = SentenceCache(sentence_cache)
        # the image encoder in this thread while the text encoder runs (`image_engine_for`)
        self._beside = ThreadPoolExecutor(1, "lesionloc-image") if side_by_side else None
        self.providers: list[str] = list(dict.fromkeys(  # the image encoder's, then the text's
            getattr(image_encoder, "providers", ["torch"]) + getattr(text_encoder, "providers", [])))

    @classmethod
    def load(
        cls,
        bundle: str | os.PathLike[str] | ModelBundle | None = None,
        *,
        providers: Sequence[str] = ("cpu",),
        threads: int | None = None,
        sentence_cache: int = DEFAULT_ENTRIES,
        side_by_side: bool = True,
    ) -> Localizer:
        """Open a bundle directory (default: the embedded demo model), verified by checksum.
        `sentence_cache`: how many sentences' embeddings to keep (0: none). `side_by_side`:
        the encoders side by side where the engines gain from it (`image_engine_for`)."""
        if not isinstance(bundle, ModelBundle):
            bundle = ModelBundle.load(demo_bundle_path() if bundle is None else bundle)
        threads = threads or default_threads()
        image_engine, providers, text_threads = image_engine_for(
            providers, threads, int8=bundle.quantization == "int8", beside=side_by_side)
        # the two sessions load concurrently (ORT releases the GIL while building a session):
        # building them is most of a cold start
        with ThreadPoolExecutor(max_workers=2) as pool:
            image = pool.submit(image_engine, bundle.file(bundle.image_encoder.file),
                                bundle.image_encoder)
            text = pool.submit(OnnxEncoder, bundle.file(bundle.text_encoder.file),
                               bundle.text_encoder, providers, text_threads)
            tokenizer = SentenceTokenizer(bundle.file(bundle.tokenizer_file), bundle.max_length)
            import_dicom_stack()  # meanwhile: the first DICOM read would pay it
            image_encoder = image.result()
            check_image_size(image_encoder.input_shapes["pixel_values"],
                             bundle.preprocessing.image_size, str(image_encoder.path))
            check_patch_grid(image_encoder.output_shapes["patch_embeds"], bundle.grid,
                             str(image_encoder.path))
            return cls(bundle, image_encoder, text.result(), tokenizer, sentence_cache, threads,
                       side_by_side=text_threads < threads)

    def read_image(self, path: str | os.PathLike[str]) -> Radiograph:
        """`imageio.read_image` on this process's threads, keeping the stored levels for a
        model fed an 8-bit film (AFLoc, BioViL), from which preprocessing makes it faster."""
        return read_image(path, threads=self.threads,
                          keep_stored=self.bundle.preprocessing.intensity in EIGHT_BIT)

    # -- encoders -------------------------------------------------------------------------
    def encode_image(self, image: Radiograph) -> EncodedImage:
        return self._encode_preprocessed(self._preprocess(image))

    def _preprocess(self, image: Radiograph) -> PreprocessedImage:
        return preprocess(image, self.bundle.preprocessing, self.threads)

    def _encode_preprocessed(self, prep: PreprocessedImage) -> EncodedImage:
        out = self.image_encoder.run({"pixel_values": prep.tensor[None]})
        patches = out["patch_embeds"][0].astype(np.float32)
        return EncodedImage(
            _l2(out["image_embeds"][0].astype(np.float32)),
            # global-share cells keep their lengths (a cell's share of the score is its length
            # too); a dot-product model's map is of its raw embeddings
            _l2(patches) if self.bundle.heatmap.similarity == "cosine" else patches,
            prep.letterbox,
            prep.window,
        )

    def encode_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(local, global) embeddings, one row per text, L2-normalized (the local ones of a
        dot-product model stay raw), each text first prepared as the source model's code does.
        Texts in the sentence cache (or repeated in `texts`) are not encoded again; the rest
        go in one batched pass, or a few when their lengths differ enough that padding would
        cost more than a run."""
        if not texts:
            dim = self.bundle.embed_dim
            return np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32)
        keys = self._text_keys(texts)
        # a text repeated in `texts` is looked up once
        cached, _ = self._cached_or_encoded(list(dict.fromkeys(keys)))
        found = [cached[key] for key in keys]
        return np.stack([item.local for item in found]), np.stack([item.glob for item in found])

    def encode_ahead(self, studies: Sequence[Sequence[str]]) -> list[int]:
        """Encode the texts of several studies (a batch's next ones) that the sentence cache
        lacks, all in one call, and keep them there: each study then finds its sentences
        cached, and the text encoder, whose cost per sentence falls as it is given more at
        once, runs on many. Returns how many distinct texts of each study this encoded for it
        (a text of several studies counts for the first). Nothing is done without a cache,
        nor when the texts would fill more than half of it (the first ones could be dropped
        before their study came)."""
        if not self.sentence_cache.entries:
            return [0] * len(studies)
        keys = [self._text_keys(texts) for texts in studies]
        distinct = list(dict.fromkeys(key for own in keys for key in own))
        if len(distinct) > self.sentence_cache.entries // 2:
            return [0] * len(studies)
        fresh = set(self._cached_or_encoded(distinct)[1])
        counts = []
        for own in keys:
            mine = fresh.intersection(own)
            fresh -= mine
            counts.append(len(mine))
        return counts

    def _text_keys(self, texts: Sequence[str]) -> list[TextKey]:
        """Each text's cache key: its token windows after the source model's preparation."""
        return self.tokenizer.windows([prepare_text(t, self.bundle.text.preparation)
                                       for t in texts])

    def _cached_or_encoded(self, distinct: list[TextKey]
                           ) -> tuple[dict[TextKey, CachedText], list[TextKey]]:
        """Each key's embeddings, from the cache or encoded now (in one run, and kept);
        and the keys encoded now."""
        found = self.sentence_cache.get_many(distinct)
        cached = {key: item for key, item in zip(distinct, found, strict=True) if item is not None}
        missing = [key for key in distinct if key not in cached]
        if missing:
            fresh_local, fresh_glob = self._run_text_encoder(missing)
            self.sentence_cache.put_many([(key, fresh_local[k], fresh_glob[k])
                                          for k, key in enumerate(missing)])
            for k, key in enumerate(missing):
                cached[key] = CachedText(fresh_local[k], fresh_glob[k])
        return cached, missing

    def _run_text_encoder(self, windows: Sequence[Sequence[Sequence[int]]]
                          ) -> tuple[np.ndarray, np.ndarray]:
        """The text encoder on tokenized texts: packed into rows for a packed graph, else each
        padded only to its run's longest."""
        out = encode_windows(self.text_encoder, self.tokenizer.batch(windows), len(windows),
                             self.bundle.packed_pooling)
        local, glob = out["sentence_embeds"], out["global_embeds"]
        return (local if self.bundle.heatmap.similarity == "dot" else _l2(local)), _l2(glob)

    # -- grounding ------------------------------------------------------------------------
    def heatmap(self, encoded: EncodedImage, sentence_embed: np.ndarray) -> Heatmap:
        return self._heatmap_of(similarity_grid(sentence_embed, encoded.patches), encoded)

    def _heatmap_of(self, grid: np.ndarray, encoded: EncodedImage) -> Heatmap:
        config = self.bundle.heatmap
        grid = smooth_grid(grid, config.smoothing_sigma, config.smoothing_border)
        return Heatmap(grid, encoded.letterbox, float(self.bundle.grid.stride),
                       self.bundle.grid.origin, config.upsampling)

    def _scores(self, encoded: EncodedImage, local: np.ndarray, glob: np.ndarray,
                grids: np.ndarray | None = None) -> np.ndarray:
        """Each of k sentences' score as the bundle says, (k, D) embeddings -> (k,): our local
        loss's attention score, or the cosine of the global embeddings (the imported models'
        own image-text similarity). `grids`: their similarity grids when computed already
        (the local score's logits)."""
        if self.bundle.heatmap.score == "global-cosine":
            return np.einsum("kd,d->k", glob, encoded.global_embed)
        return local_alignment_scores(local, encoded.patches,
                                      self.bundle.heatmap.attention_temperature, grids)

    def heatmaps(self, image: Radiograph, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), H, W) float32 heatmaps on the image's original pixel grid (evaluation)."""
        encoded = self.encode_image(image)
        local, _ = self.encode_texts(texts)
        return np.stack([self.heatmap(encoded, s).render() for s in local]) if len(texts) else \
            np.zeros((0, image.height, image.width), np.float32)

    def prepare(
        self,
        image: Radiograph | str | os.PathLike[str],
        report: Report | str | os.PathLike[str] | None = None,
        queries: Sequence[str] = (),
    ) -> PreparedStudy:
        """Everything before the encoders: the image read and preprocessed, the report parsed
        into the sentences to ground. Needs no encoder, so a batch prepares the next study
        while the encoders run the current one."""
        t0 = time.perf_counter()
        radiograph = image if isinstance(image, Radiograph) else self.read_image(image)
        for note in radiograph.notes:  # the CLI's logging prints these as "warning: ..."
            _log.warning("%s: %s", os.path.basename(radiograph.source), note)
        report_source = None
        if report is not None and not isinstance(report, Report):
            report_source = os.path.basename(os.fspath(report))
            report = read_report(report)
        sentences = study_sentences(report, queries)
        if not sentences:
            raise ReportError("nothing to ground: give a report with sentences or a --query")
        t1 = time.perf_counter()
        prep = self._preprocess(radiograph)
        t2 = time.perf_counter()
        return PreparedStudy(radiograph, report, report_source, sentences, prep,
                             {"read": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3})

    def localize(
        self,
        image: Radiograph | str | os.PathLike[str] | PreparedStudy,
        report: Report | str | os.PathLike[str] | None = None,
        *,
        queries: Sequence[str] = (),
        ground: str = "findings",
        study_id: str | None = None,
        report_score: bool = False,
    ) -> StudyResult:
        """Ground a study's report sentences and/or free-text queries on its image.

        `report` is a parsed Report, a path to a report file, or None (queries only); or
        `image` is a study already `prepare`d (then `report` and `queries` are not given).
        `ground="findings"` makes heatmaps for finding sentences and queries; `"all"` also for
        negated and normal sentences. Every sentence gets a score either way. `report_score`
        also scores the whole report against the image (global embeddings; one more pass).
        """
        if ground not in _GROUND_CHOICES:
            raise ValueError(f"ground must be one of {_GROUND_CHOICES}")
        start = time.perf_counter()
        study = image if isinstance(image, PreparedStudy) else self.prepare(image, report, queries)
        timings = dict(study.timings_ms)
        t = time.perf_counter()
        beside = self._beside.submit(_timed, self._encode_preprocessed, study.prep) \
            if self._beside else None
        if beside is None:
            encoded, timings["image_encoder"] = _timed(self._encode_preprocessed, study.prep)
        t_text = time.perf_counter()
        # A finding is encoded as the part that names it ("No pneumothorax, but a small left
        # effusion persists." -> "a small left effusion persists."); the rest as written.
        local, glob = self.encode_texts([s.grounded_text for s in study.sentences])
        # The whole report is one long sequence: padding every sentence to its length would
        # multiply the text encoder's work, so it is encoded only when its score is asked for.
        body = study.report.body if (study.report is not None and report_score) else None
        body_embed = self.encode_texts([body])[1][0] if body else None
        timings["text_encoder"] = (time.perf_counter() - t_text) * 1e3
        if beside is not None:  # side by side: "encoders" is their wall time together
            encoded, timings["image_encoder"] = beside.result()
        timings["encoders"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        results = self._ground_sentences(study.sentences, encoded, local, glob, ground)
        image_score = float(body_embed @ encoded.global_embed) if body_embed is not None else None
        timings["heatmaps"] = (time.perf_counter() - t) * 1e3
        elapsed = (time.perf_counter() - start) * 1e3
        # a study prepared beforehand (a batch's next one) counts its reading as it took
        timings["total"] = elapsed + (sum(study.timings_ms.values()) if study is image else 0.0)
        return self._study_result(study, encoded, results, image_score, timings, study_id)

    def _ground_sentences(self, sentences: Sequence[Sentence], encoded: EncodedImage,
                          local: np.ndarray, glob: np.ndarray, ground: str) -> list[SentenceResult]:
        """Every sentence scored; heatmap, peak and boxes for those to ground. One product of
        the patches with every sentence gives both the scores' logits and the heatmaps' grids."""
        grids = similarity_grid(local, encoded.patches)
        scores = self._scores(encoded, local, glob, grids)
        results: list[SentenceResult] = []
        for index, sentence in enumerate(sentences):
            result = SentenceResult(index, sentence.text, sentence.section, sentence.kind,
                                    float(scores[index]), uncertain=sentence.uncertain,
                                    grounded_span=sentence.span)
            if ground == "all" or sentence.kind == "finding":
                heat = self._heatmap_of(grids[index], encoded)
                result.heatmap = heat
                result.peak = heat.peak()
                result.boxes = heat.boxes(self.bundle.heatmap)
            results.append(result)
        return results

    def _study_result(self, study: PreparedStudy, encoded: EncodedImage,
                      results: list[SentenceResult], image_score: float | None,
                      timings: dict[str, float], study_id: str | None) -> StudyResult:
        radiograph = study.radiograph
        return StudyResult(
            study_id=study_id or Path(radiograph.source).stem,
            source=os.path.basename(radiograph.source),
            image_format=radiograph.format,
            width=radiograph.width,
            height=radiograph.height,
            pixel_spacing_mm=radiograph.pixel_spacing_mm,
            letterbox=encoded.letterbox,
            model=self.bundle.provenance(self.providers),  # what actually ran
            sentences=results,
            image_score=image_score,
            report_source=study.report_source,
            timings_ms=timings,
            display=radiograph.pixels,
            display_window=study.prep.window,
            notes=list(radiograph.notes),
        )
