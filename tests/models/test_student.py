"""init-student: layer choice, every copied tensor equals the teacher's, output loads in plain transformers."""

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

from distilkit.errors import ConfigError, ModelError
from distilkit.models.student import InitStudentConfig, build_student, init_student, spread_layers
from distilkit.models.teacher import arch_of, layer_index, load_model
from tiny import make_model


def test_spread_layers_matches_distilbert():
    assert spread_layers(12, 6) == [0, 2, 4, 7, 9, 11]
    assert spread_layers(6, 3) == [0, 2, 5]
    assert spread_layers(6, 6) == list(range(6))
    with pytest.raises(ConfigError):
        spread_layers(6, 7)


def _assert_copied(teacher, student, layers):
    arch = arch_of(teacher.config)
    teacher_state = teacher.state_dict()
    checked = 0
    for key, tensor in student.state_dict().items():
        index = layer_index(key, arch)
        source = key if index is None else key.replace(f".{index}.", f".{layers[index]}.", 1)
        assert torch.equal(tensor, teacher_state[source]), key
        checked += 1
    assert checked == len(student.state_dict())


@pytest.mark.parametrize(("kind", "mlm"), [("bert", True), ("bert", False), ("distilbert", True), ("roberta", True)])
def test_every_copied_tensor_equals_the_teachers(tmp_path, kind, mlm):
    teacher = make_model(tmp_path / "teacher", kind, mlm=mlm, layers=4)
    student = build_student(teacher, [1, 3])
    assert type(student) is type(teacher)
    _assert_copied(teacher, student, [1, 3])
    # The copied layers really are different tensors per position (not all from one layer).
    assert not torch.equal(teacher.state_dict()[next(k for k in teacher.state_dict() if ".0." in k)],
                           student.state_dict()[next(k for k in student.state_dict() if ".0." in k)])  # fmt: skip


def test_init_student_saves_a_directory_plain_transformers_loads(tmp_path):
    teacher = make_model(tmp_path / "teacher", "bert", mlm=True, layers=4)
    out = init_student(InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "student"), layers="0,3")).out
    loaded = AutoModelForMaskedLM.from_pretrained(out)
    assert loaded.config.num_hidden_layers == 2
    assert loaded.config.distilkit_teacher_layers == [0, 3]
    _assert_copied(teacher, loaded, [0, 3])
    assert AutoTokenizer.from_pretrained(out)("the sea")["input_ids"][0] == 2
    # Same outputs as a freshly built student: the weights survive the save/load round trip.
    ids = torch.tensor([[2, 10, 11, 3]])
    fresh = build_student(teacher, [0, 3]).eval()
    assert torch.allclose(loaded.eval()(ids).logits, fresh(ids).logits, atol=1e-6)


def test_init_student_default_is_half_the_layers(tmp_path):
    make_model(tmp_path / "teacher", "bert", mlm=False, layers=4)
    out = init_student(InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "student"))).out
    assert AutoModel.from_pretrained(out).config.distilkit_teacher_layers == [0, 3]


def test_bad_layers_and_missing_teacher(tmp_path):
    make_model(tmp_path / "teacher", "bert", layers=4)
    teacher = str(tmp_path / "teacher")
    with pytest.raises(ConfigError, match="do not exist"):
        init_student(InitStudentConfig(teacher, str(tmp_path / "a"), layers="0,7"))
    with pytest.raises(ConfigError, match="increasing"):
        init_student(InitStudentConfig(teacher, str(tmp_path / "b"), layers="2,1"))
    with pytest.raises(ConfigError, match="integers"):
        init_student(InitStudentConfig(teacher, str(tmp_path / "c"), layers="0,x"))
    with pytest.raises(ConfigError, match="not both"):
        InitStudentConfig(teacher, str(tmp_path / "d"), layers="0", num_layers=1)
    with pytest.raises(ModelError, match="not found"):
        init_student(InitStudentConfig(str(tmp_path / "nope"), str(tmp_path / "e")))
    assert not any((tmp_path / name).exists() for name in "abce")


def test_teacher_without_weights_is_refused(tmp_path):
    make_model(tmp_path / "teacher", "bert", layers=2)
    (tmp_path / "teacher" / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights"):
        load_model(tmp_path / "teacher")


# ---------------------------------------------------------------- narrower students
def test_narrowing_slices_every_tensor_from_the_teacher(tmp_path):
    from distilkit.models.student import Narrowing, selection_projection

    teacher = make_model(tmp_path / "teacher", "bert", mlm=True, layers=4, hidden=32, heads=4)  # head size 8
    hidden = tuple(range(0, 32, 2))
    narrowing = Narrowing(hidden, num_heads=2, attention=(tuple(range(8, 24)), tuple(range(16, 32))))  # heads 1,2 / 2,3
    student = build_student(teacher, [1, 3], narrowing)
    assert (student.config.hidden_size, student.config.num_attention_heads) == (16, 2)
    assert student.config.intermediate_size == teacher.config.intermediate_size
    t, s = teacher.state_dict(), student.state_dict()
    h, a1 = torch.tensor(hidden), torch.tensor(narrowing.attention[1])
    assert torch.equal(s["bert.embeddings.word_embeddings.weight"], t["bert.embeddings.word_embeddings.weight"][:, h])
    assert torch.equal(s["bert.embeddings.LayerNorm.weight"], t["bert.embeddings.LayerNorm.weight"][h])
    q = "bert.encoder.layer.{}.attention.self.query.weight"
    assert torch.equal(s[q.format(1)], t[q.format(3)][a1][:, h])
    o = "bert.encoder.layer.{}.attention.output.dense.weight"
    assert torch.equal(s[o.format(1)], t[o.format(3)][h][:, a1])
    f = "bert.encoder.layer.{}.output.dense.weight"
    assert torch.equal(s[f.format(0)], t[f.format(1)][h])
    assert torch.equal(s["cls.predictions.bias"], t["cls.predictions.bias"])
    projection = selection_projection(narrowing, 32)
    assert torch.equal(projection.T @ projection, torch.eye(16))  # orthonormal columns: P preserves cosines
    assert torch.equal(projection @ torch.arange(16.0), torch.zeros(32).index_put((h,), torch.arange(16.0)))


def test_plan_narrowing_keeps_high_energy_dims_and_strong_heads(tmp_path):
    from distilkit.models.student import plan_narrowing

    teacher = make_model(tmp_path / "teacher", "bert", mlm=False, layers=2, hidden=32, heads=4)
    with torch.no_grad():  # make head 2 of layer 1 the strongest value→output path
        teacher.encoder.layer[1].attention.self.value.weight[16:24] *= 10
    energy = torch.arange(32.0).flip(0)  # dim 0 has the most energy
    plan = plan_narrowing(teacher, [0, 1], energy, width=16, num_heads=None)
    assert plan.hidden == tuple(range(16)) and plan.num_heads == 2
    assert set(range(16, 24)) <= set(plan.attention[1])
    with pytest.raises(ConfigError, match="head size 8"):
        plan_narrowing(teacher, [0, 1], energy, width=12, num_heads=None)
    with pytest.raises(ConfigError, match="--num-heads 4 does not fit"):
        plan_narrowing(teacher, [0, 1], energy, width=16, num_heads=4)


def test_init_student_hidden_size_writes_the_projection(tmp_path):
    from safetensors.torch import load_file

    from distilkit.models.student import PROJECTION_FILE

    make_model(tmp_path / "teacher", "bert", mlm=False, layers=4, hidden=32, heads=4)
    (tmp_path / "probe.txt").write_text("the sea was long\na whale and a ship\nshe said that the house was old\n")
    result = init_student(InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "s"), num_layers=2,
                                            hidden_size=24, probe_text=str(tmp_path / "probe.txt")))  # fmt: skip
    loaded = AutoModel.from_pretrained(result.out)
    assert result.hidden_size == loaded.config.hidden_size == 24 and loaded.config.num_attention_heads == 3
    projection = load_file(result.out / PROJECTION_FILE)["weight"]
    kept = loaded.config.distilkit_teacher_hidden_dims
    assert projection.shape == (32, 24) and projection.sum() == 24
    assert projection[kept, range(24)].eq(1).all()
    with pytest.raises(ConfigError, match="--num-heads needs --hidden-size"):
        InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "x"), num_heads=2)


# ---------------------------------------------------------------- --layers auto
def test_probe_is_exhaustive_for_small_teachers_and_picks_the_best(tmp_path):
    from distilkit.models.student import probe_layers

    teacher = make_model(tmp_path / "teacher", "bert", mlm=False, layers=4)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "teacher")
    texts = ["the sea was long", "a whale and a ship", "she said that the house was old", "up and out"]
    probe = probe_layers(teacher, tokenizer, texts, 2)
    assert probe.search == "exhaustive" and len(probe.scores) == 6  # C(4, 2)
    assert probe.chosen == max(probe.scores, key=probe.scores.get)
    assert all(-1 <= v <= 1 for v in probe.scores.values()) and probe.table()[0][0] == probe.chosen
    climbed = probe_layers(teacher, tokenizer, texts, 2, max_candidates=3)
    assert climbed.search == "hill-climb from the even spread" and len(climbed.scores) <= 3
    assert climbed.scores[climbed.chosen] >= climbed.scores[(0, 3)]  # never worse than the even spread


def test_init_student_layers_auto_records_the_choice(tmp_path):
    make_model(tmp_path / "teacher", "bert", mlm=False, layers=4)
    (tmp_path / "probe.txt").write_text("the sea was long\na whale and a ship\nshe said that the house was old\n")
    result = init_student(InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "s"), layers="auto",
                                            num_layers=2, probe_text=str(tmp_path / "probe.txt")))  # fmt: skip
    assert result.probe is not None and result.layers == list(result.probe.chosen)
    assert AutoModel.from_pretrained(result.out).config.distilkit_teacher_layers == result.layers
    with pytest.raises(ConfigError, match="probe text not found"):
        InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "x"), layers="auto", probe_text="nope.txt")


def test_cli_init_student_auto_prints_the_probe_table(tmp_path):
    from typer.testing import CliRunner

    from distilkit.cli import app

    make_model(tmp_path / "teacher", "bert", mlm=False, layers=3)
    (tmp_path / "probe.txt").write_text("the sea was long\na whale and a ship\n")
    result = CliRunner().invoke(app, ["init-student", "--teacher", str(tmp_path / "teacher"), "--out",
                                      str(tmp_path / "s"), "--layers", "auto", "--num-layers", "2",
                                      "--probe-text", str(tmp_path / "probe.txt")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "← chosen" in result.output and "exhaustive search over 3 candidates" in result.output
