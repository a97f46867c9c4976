"""A task model is fed the tokenizer outputs its architecture takes: FlauBERT adds token_type_ids through its word
embedding table, so they are dropped (as in distillation, export and serve); BERT keeps them."""

import torch
from transformers import BertConfig, BertForSequenceClassification, FlaubertConfig, FlaubertForSequenceClassification

from distilkit.tasks.heads import forward


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 1]])
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.ones_like(ids),
            "labels": torch.tensor([0, 1])}  # fmt: skip


def test_flaubert_is_not_fed_token_type_ids():
    torch.manual_seed(0)
    config = FlaubertConfig(vocab_size=40, emb_dim=16, n_layers=1, n_heads=2, num_labels=2, max_position_embeddings=16)
    model = FlaubertForSequenceClassification(config).eval()
    batch = _batch()
    with torch.no_grad():
        logits = forward(model, batch).logits
        plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        with_types = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}).logits
    assert torch.equal(logits, plain)
    assert not torch.allclose(logits, with_types)  # the filter matters: the segment ids would change the output


def test_bert_keeps_its_token_type_ids():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, num_labels=2, type_vocab_size=2)  # fmt: skip
    model = BertForSequenceClassification(config).eval()
    batch = _batch()
    with torch.no_grad():
        logits = forward(model, batch).logits
        with_types = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}).logits
    assert torch.equal(logits, with_types)
