"""Multilingual and French teachers end to end (issue #18): XLM-RoBERTa, multilingual BERT, CamemBERT and FlauBERT.

Each architecture gets a tiny random MLM model and a tiny tokenizer trained here on French, German, Greek and
Russian lines — a SentencePiece-style Unigram for XLM-R and CamemBERT, a BPE for FlauBERT, a WordPiece for mBERT —
and goes through prepare → init-student → distill (mlm) → export (hf, ONNX) → serve. The special tokens differ on
purpose: XLM-R has <s>=0 <pad>=1, CamemBERT <s>=4 <pad>=1, FlauBERT wraps <s> … </s> with cls_token </s> and
masks with <special1>, so a pipeline that assumes BERT's ids fails here.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from distilkit.data.dataset import TokenDataset, pad_batch
from distilkit.data.masking import MaskingSpec, mask_sequences, selection_weights, step_generator
from distilkit.data.prepare import PrepareConfig, prepare
from distilkit.errors import DistilkitError, ModelError
from distilkit.models.sentence import encode
from distilkit.models.student import InitStudentConfig, init_student
from distilkit.models.teacher import load_model, load_tokenizer
from distilkit.train.distill import DistillConfig, distill

SENTENCES = [
    "Le petit chat dort sur le canapé près de la fenêtre.",
    "Nous avons mangé une tarte aux pommes très sucrée hier soir.",
    "La mer était calme et les bateaux rentraient lentement au port.",
    "Où est la gare ? Je cherche le train pour Marseille.",
    "Élise a écrit une lettre à sa grand-mère qui habite à Lyon.",
    "Der kleine Hund läuft schnell über die grüne Wiese.",
    "Die Straßenbahn fährt jeden Morgen um sieben Uhr ab.",
    "Können Sie mir bitte sagen, wo der Bahnhof ist?",
    "Im Winter schneit es oft in den Bergen von Österreich.",
    "Ο μικρός σκύλος τρέχει γρήγορα στο πράσινο λιβάδι.",
    "Η θάλασσα ήταν ήρεμη και τα πλοία γύριζαν στο λιμάνι.",
    "Πού είναι ο σταθμός; Ψάχνω το τρένο για την Αθήνα.",
    "Маленькая кошка спит на диване у окна.",
    "Зимой в горах часто идёт снег и дует ветер.",
    "Где находится вокзал? Я ищу поезд в Москву.",
]
# 75 lines: each sentence alone, and 60 pairs that mix the scripts and are longer than one prepared sequence.
CORPUS = SENTENCES + [f"{a} {b}" for a in SENTENCES for b in SENTENCES[::4]]
ARCHS = ("xlm-roberta", "bert", "camembert", "flaubert")
MODEL_CLASSES = {"xlm-roberta": "XLMRobertaForMaskedLM", "bert": "BertForMaskedLM",
                 "camembert": "CamembertForMaskedLM", "flaubert": "FlaubertWithLMHeadModel"}  # fmt: skip
# Written out here, not taken from the library: the teacher key a student key's tensor must come from.
LAYER_KEYS = {"xlm-roberta": r"encoder\.layer\.(\d+)\.", "bert": r"encoder\.layer\.(\d+)\.",
              "camembert": r"encoder\.layer\.(\d+)\.",
              "flaubert": r"\.(?:attentions|layer_norm1|ffns|layer_norm2)\.(\d+)\."}  # fmt: skip
STUDENT_LAYERS = [0, 3]


def _unigram(specials: list[str]):
    """A SentencePiece-style Unigram (Metaspace, NFKC) trained on the corpus; <mask> is the last id, as in XLM-R."""
    from tokenizers import SentencePieceUnigramTokenizer

    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(CORPUS, vocab_size=300, special_tokens=specials, unk_token="<unk>")
    unigram.add_special_tokens(["<mask>"])
    return unigram._tokenizer


def _template(backend, single: str, pair: str, names: tuple[str, ...]) -> None:
    from tokenizers import processors

    vocab = backend.get_vocab()
    special_tokens = [(name, vocab[name]) for name in names]
    backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special_tokens)


def make_tokenizer(arch: str):
    """A fast tokenizer of the architecture's own kind and special tokens, trained on CORPUS in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast, CamembertTokenizerFast, PreTrainedTokenizerFast, XLMRobertaTokenizerFast

    roberta_specials = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
                        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}  # fmt: skip
    if arch in ("xlm-roberta", "camembert"):
        # CamemBERT's real vocabulary starts <s>NOTUSED <pad> </s>NOTUSED <unk>: its <s> and </s> are not 0 and 2.
        specials = ["<s>", "<pad>", "</s>", "<unk>"] if arch == "xlm-roberta" else ["<s>NOTUSED", "<pad>",
                    "</s>NOTUSED", "<unk>", "<s>", "</s>"]  # fmt: skip
        backend = _unigram(specials)
        _template(backend, "<s> $A </s>", "<s> $A </s> </s> $B </s>", ("<s>", "</s>"))
        cls = XLMRobertaTokenizerFast if arch == "xlm-roberta" else CamembertTokenizerFast
        return cls(tokenizer_object=backend, **roberta_specials)
    if arch == "bert":  # multilingual BERT: cased WordPiece, accents kept
        backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        backend.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece()
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        backend.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
        _template(backend, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1", ("[CLS]", "[SEP]"))
        return BertTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                                 cls_token="[CLS]", mask_token="[MASK]")  # fmt: skip
    # FlauBERT: BPE with XLM's </w> word ends, punctuation split off as Moses does; <s> A </s>, cls_token </s>,
    # mask <special1>, and token type ids (as the slow FlaubertTokenizer returns them).
    specials = ["<s>", "</s>", "<pad>", "<unk>", *(f"<special{i}>" for i in range(10))]
    backend = Tokenizer(models.BPE(unk_token="<unk>", end_of_word_suffix="</w>"))
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    backend.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, end_of_word_suffix="</w>")
    backend.train_from_iterator(CORPUS, trainer)
    _template(backend, "<s> $A </s>", "<s> $A </s> $B:1 </s>:1", ("<s>", "</s>"))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="</s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<special1>", additional_special_tokens=specials[4:],
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )  # fmt: skip


def make_config(arch: str, tokenizer, layers: int = 4):
    from transformers import BertConfig, CamembertConfig, FlaubertConfig, XLMRobertaConfig

    if arch == "flaubert":
        return FlaubertConfig(
            vocab_size=len(tokenizer), emb_dim=32, n_layers=layers, n_heads=2, dropout=0.0, attention_dropout=0.0,
            max_position_embeddings=64, pad_index=tokenizer.pad_token_id, bos_index=tokenizer.bos_token_id,
            eos_index=tokenizer.sep_token_id, unk_index=tokenizer.unk_token_id, mask_index=tokenizer.mask_token_id,
            mask_token_id=tokenizer.mask_token_id,
        )  # fmt: skip
    common = {"vocab_size": len(tokenizer), "hidden_size": 32, "num_hidden_layers": layers, "num_attention_heads": 2,
              "intermediate_size": 64, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
              "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    if arch == "bert":
        return BertConfig(max_position_embeddings=64, **common)
    cls = XLMRobertaConfig if arch == "xlm-roberta" else CamembertConfig
    # RoBERTa-family positions start after the padding id: 64 usable positions need pad + 1 + 64.
    return cls(max_position_embeddings=tokenizer.pad_token_id + 65, type_vocab_size=1,
               bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, **common)  # fmt: skip


def save_teacher(arch: str, directory, tokenizer=None):
    import transformers

    tokenizer = tokenizer or make_tokenizer(arch)
    torch.manual_seed(0)
    model = getattr(transformers, MODEL_CLASSES[arch])(make_config(arch, tokenizer))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module", params=ARCHS)
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def run(arch, tmp_path_factory):
    """The pipeline's first steps once per architecture: teacher → prepared data → student."""
    root = tmp_path_factory.mktemp(arch)
    (root / "corpus.txt").write_text("\n".join(CORPUS) + "\n", encoding="utf-8")
    teacher = save_teacher(arch, root / "teacher")
    meta = prepare(PrepareConfig(str(teacher), (str(root / "corpus.txt"),), str(root / "data"), max_len=48))
    init_student(InitStudentConfig(str(teacher), str(root / "student"), layers=",".join(map(str, STUDENT_LAYERS))))
    return {"root": root, "teacher": teacher, "meta": meta}


@pytest.fixture(scope="module")
def distilled(run):
    """A few steps of general distillation (DistilBERT's KL + MLM + cosine) from the student built by `run`."""
    root = run["root"]
    config = DistillConfig(str(run["teacher"]), str(root / "student"), str(root / "data"), str(root / "run"),
                           batch_size=8, max_steps=3, save_every=100, tensorboard=False, lr=1e-3)  # fmt: skip
    return distill(config)


def test_prepare_wraps_text_in_the_tokenizers_own_special_tokens(run):
    tokenizer = load_tokenizer(run["teacher"])
    meta = run["meta"]
    assert (
        meta["special_ids"]["mask"] == tokenizer.mask_token_id and meta["special_ids"]["pad"] == tokenizer.pad_token_id
    )
    data = TokenDataset(run["root"] / "data")
    sequences = {tuple(data[i].tolist()) for i in range(len(data))}
    encoded = [tuple(tokenizer(line)["input_ids"]) for line in CORPUS]
    whole = {ids for ids in encoded if len(ids) <= 48}  # lines that fit in one sequence: exactly as tokenized
    assert whole and whole <= sequences and len(whole) < len(encoded)  # the others were cut into pieces:
    # A line cut into pieces: every piece is wrapped as the tokenizer wraps a text (FlauBERT: <s> … </s>).
    first, last = tokenizer("a")["input_ids"][0], tokenizer("a")["input_ids"][-1]
    assert all(data[i][0] == first and data[i][-1] == last for i in range(len(data)))
    # Greek and Cyrillic are in the vocabulary, not unknown.
    assert data.token_counts[tokenizer.unk_token_id] <= 0.02 * meta["n_tokens"]


def test_masking_uses_the_tokenizers_mask_and_never_touches_special_tokens(run):
    tokenizer, data = load_tokenizer(run["teacher"]), TokenDataset(run["root"] / "data")
    specials = set(tokenizer.all_special_ids)
    weights = selection_weights(data.token_counts, data.meta["special_token_ids"], 0.7)
    sequences = [torch.from_numpy(data[i]) for i in range(len(data))]
    spec = MaskingSpec(mlm_prob=0.5, mask_frac=0.5, random_frac=0.5)  # many masks and many random replacements
    masked, labels = mask_sequences(sequences, weights, mask_id=data.meta["special_ids"]["mask"],
                                    vocab_size=len(tokenizer), spec=spec, generator=step_generator(0, 0))  # fmt: skip
    original, masked, labels = torch.cat(sequences), torch.cat(masked), torch.cat(labels)
    chosen = labels != -100
    assert not any(int(token) in specials for token in original[chosen])
    replaced = masked[chosen & (masked != original)]
    assert (replaced == tokenizer.mask_token_id).any()
    randoms = replaced[replaced != tokenizer.mask_token_id]
    assert len(randoms) and not any(int(token) in specials for token in randoms)  # never a <pad>, <s> or <mask>


def test_dynamic_padding_pads_with_the_tokenizers_pad_id(run):
    """Padded rows give the unpadded row's states: RoBERTa's positions and FlauBERT's lengths count the pad id."""
    model = load_model(run["teacher"]).eval()
    tokenizer = load_tokenizer(run["teacher"])
    short, long = (torch.tensor(tokenizer(text)["input_ids"]) for text in (SENTENCES[9], CORPUS[-1]))
    input_ids, attention_mask = pad_batch([long, short], run["meta"]["special_ids"]["pad"])
    encoder = model.base_model
    with torch.inference_mode():
        padded = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[1, : len(short)]
        alone = encoder(input_ids=short[None]).last_hidden_state[0]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-5)


def test_init_student_copies_the_teachers_layers_tensor_by_tensor(run, arch):
    import transformers

    teacher = load_model(run["teacher"])
    student = getattr(transformers, MODEL_CLASSES[arch]).from_pretrained(run["root"] / "student")
    assert type(student) is type(teacher) and student.config.num_hidden_layers == len(STUDENT_LAYERS)
    teacher_state, checked = teacher.state_dict(), 0
    for key, tensor in student.state_dict().items():
        match = re.search(LAYER_KEYS[arch], key)
        source = key
        if match:
            source = f"{key[: match.start(1)]}{STUDENT_LAYERS[int(match.group(1))]}{key[match.end(1) :]}"
        assert torch.equal(tensor, teacher_state[source]), key
        checked += bool(match)
    assert checked >= 2 * 12  # every per-layer tensor of both layers (attention, FFN, layer norms)


def test_a_narrower_student_keeps_whole_teacher_heads(run, arch):
    """--hidden-size on the BERT layout; FlauBERT ties its feed-forward width to the hidden size: refused."""
    from distilkit.errors import ConfigError
    from distilkit.models.student import build_student, plan_narrowing

    teacher = load_model(run["teacher"]).eval()
    energy = torch.arange(32, dtype=torch.float32)  # the top 16 dims: 16..31
    if arch == "flaubert":
        out = run["root"] / "narrow"
        with pytest.raises(ConfigError, match="feed-forward width") as caught:
            init_student(InitStudentConfig(str(run["teacher"]), str(out), num_layers=2, hidden_size=16))
        assert "\n" not in str(caught.value) and not out.exists()
        return
    narrowing = plan_narrowing(teacher, STUDENT_LAYERS, energy, width=16, num_heads=1)
    student = build_student(teacher, STUDENT_LAYERS, narrowing).eval()
    assert student.config.hidden_size == 16 and student.config.num_attention_heads == 1
    embeddings = student.get_input_embeddings().weight
    torch.testing.assert_close(embeddings, teacher.get_input_embeddings().weight[:, 16:], atol=0, rtol=0)
    ids = torch.tensor([load_tokenizer(run["teacher"])(SENTENCES[4])["input_ids"]])
    with torch.inference_mode():
        assert torch.isfinite(student(input_ids=ids).logits).all()


def test_distill_runs_the_mlm_objective(run, distilled):
    result = distilled
    assert result.steps == 3 and result.skipped_steps == 0
    assert set(result.terms) == {"kl", "mlm", "cos"} and np.isfinite(result.final_loss)
    assert load_tokenizer(result.student_dir).mask_token_id == load_tokenizer(run["teacher"]).mask_token_id


@pytest.fixture(scope="module")
def exported(run, distilled):
    pytest.importorskip("onnxruntime", reason='needs the onnx extra: pip install "distilkit[onnx]"')
    from distilkit.ship.export import ExportConfig, export

    student = str(distilled.student_dir)
    hf = export(ExportConfig(student, "hf", str(run["root"] / "hf")))
    onnx = export(ExportConfig(student, "onnx", str(run["root"] / "onnx")))
    return {"student": student, "hf": hf, "onnx": onnx}


def test_export_hf_and_onnx_match_pytorch(exported):
    from transformers import AutoModel, AutoTokenizer

    from distilkit.ship.onnx_graph import ONNX_FILE, ort_session

    assert exported["onnx"].parity_max_abs_diff < 1e-4
    folder = exported["onnx"].out
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(exported["hf"].out).eval()
    texts = [SENTENCES[0], SENTENCES[11], SENTENCES[13] + " " + SENTENCES[6]]  # French, Greek, Russian + German
    features = tokenizer(texts, padding=True, truncation=True, max_length=48, return_tensors="np")
    session = ort_session(f"{folder}/{ONNX_FILE}", threads=1)
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {name: features[name].astype(np.int64) for name in names})[0]
    with torch.inference_mode():
        expected = model(**{n: torch.from_numpy(features[n]) for n in names}).last_hidden_state.numpy()
    mask = features["attention_mask"].astype(bool)
    np.testing.assert_allclose(got[mask], expected[mask], atol=1e-4)


def test_serve_answers_as_training_and_evaluate_encode(exported):
    """The served embedding (ONNX and PyTorch) equals `encode`'s, from the inputs training feeds the model."""
    from distilkit.ship.serve.predictor import load_predictor

    text = SENTENCES[12]
    onnx = load_predictor("student", exported["onnx"].out, backend="onnx").predict([text])[0]["embedding"]
    eager = load_predictor("student", exported["student"], backend="torch").predict([text])[0]["embedding"]
    model, tokenizer = load_model(exported["student"]), load_tokenizer(exported["student"])
    reference = encode(model, tokenizer, [text])[0]
    np.testing.assert_allclose(onnx, reference, atol=1e-4)
    np.testing.assert_allclose(eager, reference, atol=1e-5)
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    with torch.inference_mode():  # input_ids and attention_mask only, as distill runs it
        states = model.base_model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    trained = torch.nn.functional.normalize(states.mean(1), dim=-1)[0].numpy()
    np.testing.assert_allclose(reference, trained, atol=1e-5)


# ---------------------------------------------------------------- bad input: one line, before any work
def test_a_tokenizer_without_a_mask_token_is_refused_before_distilling(tmp_path):
    tokenizer = make_tokenizer("xlm-roberta")
    tokenizer.mask_token = None
    teacher = save_teacher("xlm-roberta", tmp_path / "teacher", tokenizer)
    (tmp_path / "corpus.txt").write_text("\n".join(CORPUS), encoding="utf-8")
    prepare(PrepareConfig(str(teacher), (str(tmp_path / "corpus.txt"),), str(tmp_path / "data"), max_len=24))
    init_student(InitStudentConfig(str(teacher), str(tmp_path / "student"), num_layers=2))
    config = DistillConfig(str(teacher), str(tmp_path / "student"), str(tmp_path / "data"), str(tmp_path / "run"),
                           batch_size=8, max_steps=2, tensorboard=False)  # fmt: skip
    with pytest.raises(DistilkitError, match="no mask token") as caught:
        distill(config)
    assert "\n" not in str(caught.value) and not (tmp_path / "run").exists()


def test_an_architecture_the_layer_copy_does_not_know_is_refused(tmp_path):
    from transformers import ElectraConfig, ElectraForMaskedLM

    tokenizer = make_tokenizer("bert")
    config = ElectraConfig(vocab_size=len(tokenizer), embedding_size=32, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64)  # fmt: skip
    ElectraForMaskedLM(config).save_pretrained(tmp_path / "electra")
    tokenizer.save_pretrained(tmp_path / "electra")
    with pytest.raises(ModelError, match="unsupported model type 'electra'") as caught:
        init_student(InitStudentConfig(str(tmp_path / "electra"), str(tmp_path / "student"), num_layers=1))
    assert "\n" not in str(caught.value) and not (tmp_path / "student").exists()
