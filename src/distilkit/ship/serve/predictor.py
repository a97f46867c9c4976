"""What one model answers: tokenise a batch of inputs, run it (PyTorch or ONNX Runtime), decode per kind.

Kinds (see `distilkit.ship.kinds.model_kind`): embedding → the sentence embedding `distilkit evaluate --task sts`
scores (pooling, normalisation, lower-casing and length from the model's sentence-transformers config, via
`distilkit.models.sentence`); classification → label and probabilities; token-classification → a tag per word
and, for span tags (IOB, BIOES), entities with character spans; qa → answer text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from distilkit.embeddings import count_parameters
from distilkit.models.sentence import SentenceSpec, embed, pool, read_sentence_spec
from distilkit.models.teacher import hidden_size, load_config, load_tokenizer, num_layers, resolve_model_path
from distilkit.ship.bench import weights_bytes
from distilkit.ship.kinds import KINDS, input_names, load_task_model, max_tokens, model_kind, read_task
from distilkit.ship.onnx_graph import onnx_parameters, ort_session, run_session
from distilkit.ship.serve.backends import BackendChoice, choose_backend

Item = str | tuple[str, str]  # a text, or (question, context) for QA
QA_MAX_LEN = 384  # SQuAD's usual window (run_qa.py), stride a third of it


@dataclass
class Predictor:
    """One loaded model: ``predict(items)`` returns one JSON-ready answer per item."""

    name: str
    model_dir: str
    kind: str
    backend: str  # the runtime: torch | onnx
    max_len: int
    tokenizer: Any
    model: Any = None  # the PyTorch model (backend torch)
    session: Any = None  # the ONNX Runtime session (backend onnx)
    info: dict[str, Any] = field(default_factory=dict)
    sentence: SentenceSpec = field(default_factory=SentenceSpec)  # embedding models: how token states are pooled
    max_rows: int = 0  # rows per forward (0 = all at once): QA windows never exceed the server's --max-batch

    def check(self, item: Item) -> str | None:
        """Why this item cannot be answered (beyond the server's size limits), or None."""
        if self.kind == "qa":
            question = item[0]
            room = self.max_len - self.tokenizer.num_special_tokens_to_add(pair=True) - self.max_len // 3
            n = len(self.tokenizer(question.lstrip(), add_special_tokens=False)["input_ids"])
            if n >= room:
                return f"question has {n} tokens; this model takes at most {room - 1}"
        return None

    def run(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The model's outputs for a padded batch, in forwards of at most ``max_rows`` rows."""
        rows = len(features["input_ids"])
        if 0 < self.max_rows < rows:
            parts = [
                self._forward({k: v[start : start + self.max_rows] for k, v in features.items()})
                for start in range(0, rows, self.max_rows)
            ]
            return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
        return self._forward(features)

    def _forward(self, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.session is not None:
            return run_session(self.session, features)
        names = self.info["inputs"]
        with torch.inference_mode():
            outputs = self.model(**{n: torch.as_tensor(np.asarray(features[n], dtype=np.int64)) for n in names})
        return {name: outputs[name].float().numpy() for name in KINDS[self.kind][1]}

    def warm_up(self) -> None:
        """One tiny request, so that the first client does not pay for first-call set-up (allocator, kernels)."""
        self.predict([("what is it?", "it is a warm-up.")] if self.kind == "qa" else ["warm-up"])

    def predict(self, items: list[Item]) -> list[dict[str, Any]]:
        if self.kind == "qa":
            return self._answers(items)
        offsets = self.kind == "token-classification"
        texts = list(items)
        if self.kind == "embedding" and self.sentence.do_lower_case:
            texts = [text.lower() for text in texts]
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_len, return_tensors="np",
            return_offsets_mapping=offsets,
        )  # fmt: skip
        outputs = self.run(dict(encoded))
        if self.kind == "embedding":
            vectors = sentence_embeddings(outputs["last_hidden_state"], encoded["attention_mask"], self.sentence)
            return [{"embedding": [round(float(x), 6) for x in row], "dim": len(row)} for row in vectors]
        if self.kind == "classification":
            return [self._label(row) for row in outputs["logits"]]
        return [self._tags(text, encoded, i, outputs["logits"][i]) for i, text in enumerate(items)]

    def _labels(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in (self.info.get("id2label") or {}).items()}

    def _label(self, logits: np.ndarray) -> dict[str, Any]:
        if logits.shape[-1] == 1:  # regression (STS-B)
            return {"score": float(logits[0])}
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        names = self._labels()
        labels = [names.get(i, str(i)) for i in range(len(probs))]
        best = int(probs.argmax())
        return {"label": labels[best], "score": float(probs[best]),
                "probabilities": {label: float(p) for label, p in zip(labels, probs, strict=True)}}  # fmt: skip

    def _tags(self, text: str, encoded, row: int, logits: np.ndarray) -> dict[str, Any]:
        """One tag per word, read at its first sub-token, with the word's character span; for span tags (IOB,
        BIOES) also the entities they decode into. A model with plain tags (parts of speech, ...) has no entities."""
        from distilkit.tasks.metrics import extract_entities
        from distilkit.tasks.readers.schemes import scheme_of_labels

        names = self._labels()
        word_ids, offsets = encoded.word_ids(row), encoded["offset_mapping"][row]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        words: list[tuple[str, int, int, float]] = []  # tag, start char, end char, score
        for position, word in enumerate(word_ids):
            if word is None:
                continue
            start, end = (int(x) for x in offsets[position])
            if word == len(words) - 1:  # a later sub-token of the same word: extend its span
                words[-1] = (words[-1][0], words[-1][1], end, words[-1][3])
            elif word == len(words):
                tag = names.get(int(probs[position].argmax()), "O")
                words.append((tag, start, end, float(probs[position].max())))
        tagged = [{"text": text[start:end], "tag": tag, "start": start, "end": end, "score": score}
                  for tag, start, end, score in words]  # fmt: skip
        if scheme_of_labels(names.values()) == "plain":
            return {"words": tagged}
        entities = []
        for entity_type, first, last in extract_entities([w[0] for w in words]):
            start, end = words[first][1], words[last][2]
            score = float(np.mean([w[3] for w in words[first : last + 1]]))
            entities.append({"text": text[start:end], "label": entity_type, "start": start, "end": end, "score": score})
        return {"entities": entities, "words": tagged}

    def _answers(self, items: list[Item]) -> list[dict[str, Any]]:
        from distilkit.tasks.features import prepare_eval_features
        from distilkit.tasks.predict import postprocess_predictions
        from distilkit.tasks.readers.squad import SquadExample

        examples = [SquadExample(str(i), "", context, question, (), ()) for i, (question, context) in enumerate(items)]
        features = prepare_eval_features(examples, self.tokenizer, self.max_len, self.max_len // 3)
        model_inputs = {k: v for k, v in features.items() if k not in ("example_id", "offset_mapping")}
        padded = self.tokenizer.pad(model_inputs, return_tensors="np")
        outputs = self.run(dict(padded))
        answers = postprocess_predictions(examples, features, outputs["start_logits"], outputs["end_logits"])
        return [{"answer": answers[example.id]} for example in examples]


def sentence_embeddings(hidden: np.ndarray, attention_mask: np.ndarray, spec: SentenceSpec) -> np.ndarray:
    """(B, L, d) token states → (B, d') sentence embeddings, pooled as ``evaluate``/``models.sentence.encode`` pool."""
    states, mask = torch.as_tensor(np.asarray(hidden, np.float32)), torch.as_tensor(np.asarray(attention_mask))
    return embed(pool(states, mask, spec.pooling), spec).numpy()


def load_predictor(
    name: str, model_dir: str, backend: str = "auto", max_len: int = 128, threads: int = 0, max_rows: int = 0
) -> Predictor:
    """Load ``model_dir`` for serving on the backend `backends.choose_backend` picks for ``backend``."""
    path = resolve_model_path(model_dir)
    choice = choose_backend(path, backend)
    source = str(choice.folder)  # an export folder carries the tokenizer, config, task and pooling files
    kind, config, tokenizer = model_kind(source), load_config(source), load_tokenizer(source)
    length = min(QA_MAX_LEN if kind == "qa" else max_len, max_tokens(config))
    sentence = read_sentence_spec(source) if kind == "embedding" else SentenceSpec()
    if kind == "embedding":  # never past the length the model's sentence config truncates at
        length = min(length, sentence.max_length(config, tokenizer))
    info: dict[str, Any] = {
        "dir": str(path), "kind": kind, "task": read_task(source), "model_type": config.model_type,
        "layers": num_layers(config), "hidden": hidden_size(config), "max_len": length,
        "id2label": {int(k): v for k, v in (getattr(config, "id2label", None) or {}).items()} if kind != "embedding"
        else None, "backend_choice": _choice_info(choice, backend),
    }  # fmt: skip
    if kind == "embedding":
        info.update(pooling=list(sentence.pooling), normalize=sentence.normalize)
    common = {"info": info, "sentence": sentence, "max_rows": max_rows}
    if choice.graph is not None:
        session = ort_session(choice.graph, threads)
        info.update(backend=f"onnxruntime ({choice.graph.name})", inputs=[i.name for i in session.get_inputs()])
        info.update(bytes=choice.graph.stat().st_size, params=onnx_parameters(choice.graph))
        return Predictor(name, str(path), kind, "onnx", length, tokenizer, session=session, **common)
    model = load_task_model(source, kind)
    info.update(backend="pytorch fp32", inputs=input_names(model, tokenizer), params=count_parameters(model))
    info["bytes"] = weights_bytes(source)
    return Predictor(name, str(path), kind, "torch", length, tokenizer, model=model, **common)


def _choice_info(choice: BackendChoice, asked: str) -> dict[str, str]:
    return {"asked": asked, "chosen": choice.backend, "reason": choice.reason}
