"""distill --objective embedding on tiny sentence-transformers teachers: terms, outputs, narrower students, resume."""

import dataclasses
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel

from distilkit.embeddings import SentenceModel, load_sentence_model
from distilkit.errors import ConfigError, ModelError
from distilkit.models.sentence import SentenceSpec, write_sentence_files
from distilkit.models.student import PROJECTION_FILE, InitStudentConfig, init_student
from distilkit.train.distill import DistillConfig, distill
from distilkit.train.objective import Objective, compute_terms
from tiny import make_model, make_tokenizer, tiny_config, write_token_data

DRIVER = Path(__file__).with_name("kill_driver.py")
TEXTS = ["the sea was long", "a whale and a ship", "she said that the old house was good", "up"]


def st_teacher(directory: Path, dropout: float = 0.0, initializer_range: float = 0.02) -> Path:
    """A tiny 4-layer BERT encoder saved as a sentence-transformers folder (mean pooling + normalise).

    At the default initializer range a random encoder gives every text nearly the same embedding, so that a
    student cut from it already matches it (cosine ≈ 0.9998); 0.1 makes texts differ and the student miss."""
    torch.manual_seed(0)
    config = tiny_config("bert", layers=4, dropout=dropout)
    config.initializer_range = initializer_range
    AutoModel.from_config(config).save_pretrained(directory)
    make_tokenizer(directory)
    write_sentence_files(directory, SentenceSpec(), 32, 64)
    return directory


@pytest.fixture
def setup(tmp_path):
    teacher = st_teacher(tmp_path / "teacher")
    init_student(InitStudentConfig(str(teacher), str(tmp_path / "student"), layers="0,3"))
    write_token_data(tmp_path / "data", n_sequences=64)
    return DistillConfig(
        teacher=str(teacher), student=str(tmp_path / "student"), data=str(tmp_path / "data"), out=str(tmp_path / "out"),
        objective="embedding", batch_size=8, max_steps=4, save_every=2, tensorboard=False,
    )  # fmt: skip


def _records(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_embedding_terms_by_hand():
    """emb_mse / emb_cos are the row losses on pooled vectors, divided by the global sequence count."""
    objective = Objective(
        {"emb_mse": 1.0, "emb_cos": 1.0, "emb_sim": 1.0}, 1.0, kind="embedding", sentence=SentenceSpec()
    )
    student = {"pooled": torch.tensor([[1.0, 0.0], [1.0, 1.0]])}
    teacher = {"pooled": torch.tensor([[0.0, 1.0], [1.0, 0.0]])}
    terms = compute_terms(objective, student, teacher, torch.ones(2, 3), None, {"sequences": 4.0})
    # mse rows: ((1)² + (1)²)/2 = 1 and (0 + 1)/2 = 0.5 → 1.5 / 4; cos rows: 1 − 0 and 1 − 1/√2 → 1.292893 / 4.
    assert terms["emb_mse"].item() == pytest.approx(0.375)
    assert terms["emb_cos"].item() == pytest.approx(0.323223, abs=1e-6)
    # similarities: student [[1, 1/√2], [1/√2, 1]], teacher I → squared gaps 1/2 off the diagonal → 2 · 1/4 / 4.
    assert terms["emb_sim"].item() == pytest.approx(0.125)


def _distance(teacher: SentenceModel, student: str | Path, texts: list[str]) -> float:
    """Mean cosine distance between the student's and the teacher's sentence embeddings."""
    return float(1 - (teacher.encode(texts) * load_sentence_model(student).encode(texts)).sum(1).mean())


def test_embedding_objective_trains_and_saves_a_sentence_transformers_student(setup, tmp_path):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    teacher = st_teacher(tmp_path / "distinct", initializer_range=0.1)  # texts differ: a student has to learn
    init_student(InitStudentConfig(str(teacher), str(tmp_path / "distinct-student"), layers="0,3"))
    write_token_data(tmp_path / "data", n_sequences=64, n_words=8)
    config = dataclasses.replace(setup, teacher=str(teacher), student=str(tmp_path / "distinct-student"))
    result = distill(dataclasses.replace(config, max_steps=30, lr=2e-3, warmup_ratio=0.0))
    records = _records(result.out)
    assert set(records[0]["terms"]) == {"emb_mse", "emb_cos"} and result.terms == ["emb_mse", "emb_cos"]
    # The loss falls tenfold (0.073 → 0.007), and on texts it never saw the student's embeddings move towards
    # the teacher's: cosine distance 0.084 before distillation, 0.016 after.
    first, last = np.mean([r["loss"] for r in records[:5]]), np.mean([r["loss"] for r in records[-5:]])
    assert last < 0.3 * first
    teacher_model = load_sentence_model(teacher)
    before, after = (_distance(teacher_model, s, TEXTS) for s in (config.student, result.student_dir))
    assert after < 0.5 * before
    saved = json.loads((result.out / "config.json").read_text())
    assert saved["objective"]["kind"] == "embedding" and saved["objective"]["pooling"] == ["mean"]
    # Plain transformers and sentence-transformers both load the student; ST encodes as distilkit does.
    student = load_sentence_model(result.student_dir)
    assert student.spec.from_folder and student.model.config.num_hidden_layers == 2
    expected = st.SentenceTransformer(str(result.student_dir), device="cpu").encode(TEXTS, convert_to_numpy=True)
    np.testing.assert_allclose(student.encode(TEXTS), expected, atol=1e-5)


def test_layer_matching_and_accumulation(setup, tmp_path):
    with_hidden = dataclasses.replace(setup, alpha_hidden=1.0, alpha_attention=1.0, alpha_emb_sim=1.0)
    terms = set(_records(distill(with_hidden).out)[0]["terms"])
    assert terms == {"emb_mse", "emb_cos", "emb_sim", "hidden", "attention"}
    big = distill(dataclasses.replace(setup, batch_size=16, out=str(tmp_path / "big")))
    small = distill(dataclasses.replace(setup, batch_size=8, grad_accum=2, out=str(tmp_path / "small")))
    for a, b in zip(_records(big.out), _records(small.out), strict=True):  # padding differs: float32 noise only
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-6)


def test_bare_encoder_teacher_gets_a_note_and_mean_pooling(tmp_path):
    make_model(tmp_path / "teacher", "bert", mlm=False, layers=4)
    init_student(InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "student"), num_layers=2))
    write_token_data(tmp_path / "data", n_sequences=32)
    events = []
    result = distill(
        DistillConfig(str(tmp_path / "teacher"), str(tmp_path / "student"), str(tmp_path / "data"), str(tmp_path / "o"),
                      objective="embedding", batch_size=8, max_steps=2, tensorboard=False),
        callback=events.append,
    )  # fmt: skip
    assert any("not a sentence-transformers folder" in e["message"] for e in events if e["event"] == "note")
    assert load_sentence_model(result.student_dir).spec.pooling == ("mean",)


def test_config_and_model_refusals(setup, tmp_path):
    with pytest.raises(ConfigError, match="--objective"):
        dataclasses.replace(setup, objective="contrastive")
    with pytest.raises(ConfigError, match="nothing to train"):
        dataclasses.replace(setup, alpha_emb_mse=0, alpha_emb_cos=0)
    make_model(tmp_path / "narrow", "bert", mlm=False, layers=2, hidden=16)
    with pytest.raises(ModelError, match=PROJECTION_FILE):
        distill(dataclasses.replace(setup, student=str(tmp_path / "narrow")))
    assert not (tmp_path / "out" / "checkpoints").exists()


def narrow_setup(tmp_path: Path, dropout: float) -> DistillConfig:
    """A 16-wide, 2-layer student of a 32-wide teacher, with its selection projection."""
    teacher = st_teacher(tmp_path / "teacher", dropout=dropout)
    (tmp_path / "probe.txt").write_text("\n".join(TEXTS * 8) + "\n")
    init_student(InitStudentConfig(str(teacher), str(tmp_path / "student"), layers="0,3", hidden_size=16,
                                   probe_text=str(tmp_path / "probe.txt")))  # fmt: skip
    write_token_data(tmp_path / "data", n_sequences=48)
    return DistillConfig(
        teacher=str(teacher), student=str(tmp_path / "student"), data=str(tmp_path / "data"), out=str(tmp_path / "ref"),
        objective="embedding", batch_size=8, max_steps=8, save_every=2, keep=2, alpha_hidden=1.0, tensorboard=False,
    )  # fmt: skip


@pytest.fixture
def narrow(tmp_path):
    """Dropout on, so that an exact resume also needs the RNG state back."""
    return narrow_setup(tmp_path, dropout=0.1)


def test_narrower_student_trains_its_projection_and_saves_it(narrow):
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    initial = load_file(Path(narrow.student) / PROJECTION_FILE)["weight"]
    result = distill(dataclasses.replace(narrow, max_steps=30, lr=2e-3, warmup_ratio=0.0))
    trained = load_file(result.student_dir / PROJECTION_FILE)["weight"]
    assert trained.shape == initial.shape == (32, 16)
    assert not torch.equal(trained, initial)  # P learned with the student
    # ... and the projected student learnt the teacher's direction: the cosine term falls by more than half
    # (0.063 over the first five steps → 0.021 over the last five).
    cosine = [r["terms"]["emb_cos"] for r in _records(result.out)]
    assert np.mean(cosine[-5:]) < 0.5 * np.mean(cosine[:5])
    checkpoint = load_file(next((result.out / "checkpoints").iterdir()) / "model.safetensors")
    assert "projection.weight" in checkpoint and any(k.startswith("student.") for k in checkpoint)
    # The student's own embeddings are 16-dimensional; sentence-transformers agrees.
    loaded = st.SentenceTransformer(str(result.student_dir), device="cpu")
    np.testing.assert_allclose(load_sentence_model(result.student_dir).encode(TEXTS),
                               loaded.encode(TEXTS, convert_to_numpy=True), atol=1e-5)  # fmt: skip
    assert loaded.encode(TEXTS).shape == (len(TEXTS), 16)


def _run_driver(config: DistillConfig, point: str) -> int:
    payload = json.dumps(dataclasses.asdict(config))
    return subprocess.run([sys.executable, str(DRIVER), payload, point], capture_output=True, timeout=300).returncode


@pytest.mark.slow
def test_sigkill_then_resume_restores_the_projection_exactly(narrow, tmp_path):
    assert _run_driver(narrow, "none") == 0
    killed = dataclasses.replace(narrow, out=str(tmp_path / "killed"))
    assert _run_driver(killed, "step:5") == -signal.SIGKILL
    assert _run_driver(dataclasses.replace(killed, resume=True), "none") == 0
    for name in ("model.safetensors", PROJECTION_FILE):
        expected = load_file(Path(narrow.out) / "student" / name)
        resumed = load_file(tmp_path / "killed" / "student" / name)
        assert all(torch.equal(expected[k], resumed[k]) for k in expected), name
    assert [r["loss"] for r in _records(killed.out)] == [r["loss"] for r in _records(narrow.out)]


@pytest.mark.slow
def test_two_process_ddp_trains_the_projection_like_one_process(tmp_path):
    import socket

    narrow = narrow_setup(tmp_path, dropout=0.0)  # no dropout: processes draw different random numbers
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def args(out: str, grad_accum: int) -> list[str]:
        return [
            "-m", "distilkit.cli", "distill", "--teacher", narrow.teacher, "--student", narrow.student, "--data",
            narrow.data, "--out", str(tmp_path / out), "--objective", "embedding", "--batch-size", "8",
            "--grad-accum", str(grad_accum), "--max-steps", "4", "--alpha-hidden", "1", "--no-tensorboard",
            "--device", "cpu",
        ]  # fmt: skip

    single = subprocess.run([sys.executable, *args("single", 2)], capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    ddp = subprocess.run([*launcher, *args("ddp", 1)], capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stdout[-1500:] + ddp.stderr[-1500:]
    single_losses, ddp_losses = (_records(tmp_path / name) for name in ("single", "ddp"))
    assert [r["loss"] for r in ddp_losses] == pytest.approx([r["loss"] for r in single_losses], rel=1e-4, abs=1e-6)
    # the gradient norm too: Adam (no clipping reached here) hides a gradient off by the world size
    assert [r["grad_norm"] for r in ddp_losses] == pytest.approx([r["grad_norm"] for r in single_losses], rel=1e-4)
    a = load_file(tmp_path / "single" / "student" / PROJECTION_FILE)["weight"]
    b = load_file(tmp_path / "ddp" / "student" / PROJECTION_FILE)["weight"]
    assert torch.allclose(a, b, atol=1e-5)
