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
    out = init_student(InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "student"), layers="0,3"))
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
    out = init_student(InitStudentConfig(str(tmp_path / "teacher"), str(tmp_path / "student")))
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
