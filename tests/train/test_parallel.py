"""distill --objective embedding --parallel (issue #18): a tiny English sentence-transformers teacher, a tiny
multilingual XLM-R student with its own tokenizer, and 40 hand-made English → French/German pairs."""

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizerFast

from distilkit.embeddings import load_sentence_model, translation_retrieval
from distilkit.errors import ConfigError, DataError, ModelError
from distilkit.models.sentence import SentenceSpec, write_sentence_files
from distilkit.train.distill import DistillConfig, distill
from distilkit.train.parallel import read_parallel
from tiny import make_tokenizer, tiny_config, torchrun

DRIVER = Path(__file__).with_name("kill_driver.py")

PAIRS = [
    ("the sea was long and the night was dark", "la mer était longue et la nuit était sombre"),
    ("the old man had a good house", "le vieil homme avait une bonne maison"),
    ("she said that the ship was in the sea", "elle a dit que le navire était dans la mer"),
    ("my mother and my sister are at the house", "ma mère et ma sœur sont à la maison"),
    ("we could see the whale from the ship", "nous pouvions voir la baleine depuis le navire"),
    ("he was a little man with a great heart", "c'était un petit homme au grand cœur"),
    ("they know the way to the sea", "ils connaissent le chemin de la mer"),
    ("i love the sea at night", "j'aime la mer la nuit"),
    ("the day was very long", "la journée était très longue"),
    ("you could not see the house in the night", "on ne voyait pas la maison dans la nuit"),
    ("his sister said no", "sa sœur a dit non"),
    ("the whale was great and old", "la baleine était grande et vieille"),
    ("it was a good day for the ship", "c'était une bonne journée pour le navire"),
    ("her heart was with her mother", "son cœur était avec sa mère"),
    ("what time is it now", "quelle heure est-il maintenant"),
    ("the man in the house had no ship", "l'homme de la maison n'avait pas de navire"),
    ("we were at sea for one long day", "nous étions en mer pendant une longue journée"),
    ("there was only one way up", "il n'y avait qu'un seul chemin vers le haut"),
    ("they said that the night was good", "ils ont dit que la nuit était bonne"),
    ("he could see a whale", "il pouvait voir une baleine"),
    ("the ship was in the sea", "das Schiff war im Meer"),
    ("my mother had a little house", "meine Mutter hatte ein kleines Haus"),
    ("the night was very long", "die Nacht war sehr lang"),
    ("i know the way to the house", "ich kenne den Weg zum Haus"),
    ("the old whale was great", "der alte Wal war groß"),
    ("she was at sea all day", "sie war den ganzen Tag auf See"),
    ("his heart was good", "sein Herz war gut"),
    ("we love the sea", "wir lieben das Meer"),
    ("they could not see the ship", "sie konnten das Schiff nicht sehen"),
    ("her sister said that it was time", "ihre Schwester sagte, dass es Zeit war"),
    ("the man had no house", "der Mann hatte kein Haus"),
    ("it was a long day at sea", "es war ein langer Tag auf See"),
    ("you are a good man", "du bist ein guter Mann"),
    ("the little ship was old", "das kleine Schiff war alt"),
    ("he said no to his mother", "er sagte nein zu seiner Mutter"),
    ("one day we will see the whale", "eines Tages werden wir den Wal sehen"),
    ("the house was by the sea", "das Haus war am Meer"),
    ("what did she know", "was wusste sie"),
    ("there was a great night over the sea", "es war eine große Nacht über dem Meer"),
    ("i had a sister and a mother", "ich hatte eine Schwester und eine Mutter"),
]


def write_pairs(path: Path, pairs=PAIRS) -> Path:
    path.write_text("".join(f"{source}\t{translation}\n" for source, translation in pairs), encoding="utf-8")
    return path


def english_teacher(directory: Path) -> Path:
    """A tiny 4-layer English BERT saved as a sentence-transformers folder; initializer range 0.1 so that
    sentences get distinct embeddings (at 0.02 a random encoder gives all texts nearly the same one)."""
    torch.manual_seed(0)
    config = tiny_config("bert", layers=4)
    config.initializer_range = 0.1
    AutoModel.from_config(config).save_pretrained(directory)
    make_tokenizer(directory)
    write_sentence_files(directory, SentenceSpec(), 32, 64)
    return directory


def multilingual_student(directory: Path, hidden: int = 32, dropout: float = 0.0) -> Path:
    """A tiny 2-layer XLM-R encoder with its own SentencePiece-style Unigram tokenizer, trained on both sides."""
    from tokenizers import SentencePieceUnigramTokenizer

    unigram = SentencePieceUnigramTokenizer()
    texts = [text for pair in PAIRS for text in pair]
    unigram.train_from_iterator(
        texts, vocab_size=250, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], unk_token="<unk>"
    )
    unigram.add_special_tokens(["<mask>"])
    backend = unigram._tokenizer
    from tokenizers import processors

    vocab = backend.get_vocab()
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[(t, vocab[t]) for t in ("<s>", "</s>")]
    )
    tokenizer = XLMRobertaTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )  # fmt: skip
    torch.manual_seed(1)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=2 * hidden, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        pad_token_id=tokenizer.pad_token_id, max_position_embeddings=tokenizer.pad_token_id + 65, type_vocab_size=1,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
    )  # fmt: skip
    XLMRobertaModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture
def setup(tmp_path):
    return DistillConfig(
        teacher=str(english_teacher(tmp_path / "teacher")), student=str(multilingual_student(tmp_path / "student")),
        data=None, out=str(tmp_path / "out"), objective="embedding", parallel=str(write_pairs(tmp_path / "en-x.tsv")),
        batch_size=8, max_steps=8, save_every=2, lr=2e-3, warmup_ratio=0.0, tensorboard=False,
    )  # fmt: skip


def _records(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_read_parallel_tsv_jsonl_and_malformed_rows(tmp_path):
    tsv = write_pairs(tmp_path / "pairs.tsv", PAIRS[:3])
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("\n".join(json.dumps({"source": s, "translation": t}) for s, t in PAIRS[:3]) + "\n\n")
    expected = ([s for s, _ in PAIRS[:3]], [t for _, t in PAIRS[:3]])
    assert read_parallel(tsv) == read_parallel(jsonl) == expected
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\n\nno tab here\n")
    with pytest.raises(DataError, match=rf"^{bad}:3: expected 'source<TAB>translation', got 1 field"):
        read_parallel(bad)
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"source": "a", "translation": "b"}\n{"source": "a"}\n')
    with pytest.raises(DataError, match=rf"^{bad_json}:2: needs non-empty strings") as error:
        read_parallel(bad_json)
    assert "\n" not in str(error.value)


def test_translation_retrieval_by_hand():
    # Each text's embedding written out: source 2's nearest target is target 0, not its own.
    vectors = {"s0": [1, 0], "s1": [0, 1], "s2": [1, 0.1], "t0": [1, 0.2], "t1": [0.1, 1], "t2": [-1, 0]}

    class Fixed:
        def encode(self, texts, batch_size=64):
            return np.array([vectors[text] for text in texts], dtype=np.float32)

    accuracy = translation_retrieval(Fixed(), ["s0", "s1", "s2"], ["t0", "t1", "t2"], chunk=2)
    assert accuracy == pytest.approx(2 / 3)
    with pytest.raises(DataError, match="one target per source"):
        translation_retrieval(Fixed(), ["s0"], [])


def test_parallel_distillation_learns_translations(setup):
    sources, targets = read_parallel(setup.parallel)
    before = translation_retrieval(load_sentence_model(setup.student), sources, targets)
    result = distill(dataclasses.replace(setup, max_steps=40, lr=5e-3, save_every=100))
    records = _records(result.out)
    assert set(records[0]["terms"]) == set(result.terms) == {
        "source_emb_mse", "source_emb_cos", "translation_emb_mse", "translation_emb_cos",
    }  # fmt: skip
    # Both sides' MSE to the teacher's source embedding falls (translation: 0.369 over the first five steps, 0.011
    # over the last five), and translation retrieval on the pairs rises from 0.15–0.18 (undistilled) to 0.8.
    for side in ("source", "translation"):
        mse = [r["terms"][f"{side}_emb_mse"] for r in records]
        assert np.mean(mse[-5:]) < 0.1 * np.mean(mse[:5]), side
    student = load_sentence_model(result.student_dir)
    after = translation_retrieval(student, sources, targets)
    assert after >= before + 0.4, (before, after)
    # The saved student is a sentence-transformers folder with its own (multilingual) tokenizer.
    assert student.spec.from_folder and student.spec.pooling == ("mean",)
    assert student.tokenizer.get_vocab() == load_sentence_model(setup.student).tokenizer.get_vocab()
    assert json.loads((result.out / "config.json").read_text())["config"]["parallel"] == setup.parallel
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    loaded = st.SentenceTransformer(str(result.student_dir), device="cpu")
    np.testing.assert_allclose(student.encode(targets[:5]), loaded.encode(targets[:5]), atol=1e-5)


def test_interrupted_run_resumes_exactly(tmp_path, setup):
    config = dataclasses.replace(setup, student=str(multilingual_student(tmp_path / "dropout", dropout=0.1)))
    reference = distill(config)

    def stop_at_5(event):
        if event["event"] == "step" and event["step"] == 5:
            raise KeyboardInterrupt  # checkpoints at 2 and 4 are on disk

    interrupted = dataclasses.replace(config, out=str(tmp_path / "interrupted"))
    with pytest.raises(KeyboardInterrupt):
        distill(interrupted, callback=stop_at_5)
    events = []
    distill(dataclasses.replace(interrupted, resume=True), callback=events.append)
    assert [e["step"] for e in events if e["event"] == "resumed"] == [4]
    assert [r["loss"] for r in _records(interrupted.out)] == [r["loss"] for r in _records(reference.out)]
    expected = load_file(reference.student_dir / "model.safetensors")
    resumed = load_file(Path(interrupted.out) / "student" / "model.safetensors")
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)


def test_config_and_width_refusals(setup, tmp_path):
    for changes, message in (
        ({"objective": "mlm"}, "--parallel needs --objective embedding"),
        ({"data": str(tmp_path)}, "--parallel and --data exclude each other"),
        ({"alpha_hidden": 1.0}, "--alpha-hidden compares token states"),
        ({"parallel": str(tmp_path / "missing.tsv")}, "parallel file not found"),
        ({"parallel": None}, "--data is needed"),
    ):
        with pytest.raises(ConfigError, match=message) as error:
            dataclasses.replace(setup, **changes)
        assert "\n" not in str(error.value)
    narrow = dataclasses.replace(setup, student=str(multilingual_student(tmp_path / "narrow", hidden=16)))
    with pytest.raises(ModelError, match=r"student's hidden size \(16\) differs from the teacher's \(32\)"):
        distill(narrow)
    bad = write_pairs(tmp_path / "bad.tsv", [*PAIRS[:5], ("only a source", "")])
    with pytest.raises(DataError, match=rf"{bad}:6: expected"):
        distill(dataclasses.replace(setup, parallel=str(bad)))
    assert not (tmp_path / "out").exists()


def test_cli_parallel_flag_reaches_the_config(setup, tmp_path):
    from typer.testing import CliRunner

    from distilkit.cli import app

    flags = ["--teacher", setup.teacher, "--student", setup.student, "--out", str(tmp_path / "cli"),
             "--parallel", setup.parallel, "--objective", "mlm"]  # fmt: skip
    result = CliRunner().invoke(app, ["distill", "--data", str(tmp_path), *flags])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "--parallel needs --objective embedding" in lines[0]
    # --parallel replaces --data: the command line trains without it
    embedding = [*flags[:-2], "--objective", "embedding", "--max-steps", "2", "--no-tensorboard"]
    result = CliRunner().invoke(app, ["distill", *embedding])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cli" / "student" / "config.json").is_file()


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(setup, tmp_path):
    """The same global batch on 2 processes (gloo) as on one with --grad-accum 2: the same losses."""
    config = dataclasses.replace(setup, max_steps=4, device="cpu")

    def run(out: str, processes: int) -> list[float]:
        changed = dataclasses.replace(config, out=str(tmp_path / out), grad_accum=3 - processes)
        command = [*torchrun(processes), str(DRIVER), json.dumps(dataclasses.asdict(changed)), "none"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return [r["loss"] for r in _records(changed.out)]

    assert run("ddp", 2) == pytest.approx(run("single", 1), rel=1e-4, abs=1e-6)
