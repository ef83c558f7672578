"""ModelSpec: the preprocessing contract every artifact carries.  A bad spec must fail loudly, naming the field."""
from __future__ import annotations

import json

import pytest

from clfkit.errors import ClfError, SpecError
from clfkit.spec import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, SCHEMA_VERSION, ModelSpec


def make_spec(**changes) -> ModelSpec:
    fields = dict(class_names=("buoy", "kayak", "sailboat"), input_size=224, resize_size=256,
                  interpolation="bicubic", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), backbone="tiny")
    fields.update(changes)
    return ModelSpec(**fields)


def spec_dict(**changes) -> dict:
    data = make_spec().to_dict()
    data.update(changes)
    return data


# --- round trip ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("indent", [None, 2])
def test_json_round_trip_gives_an_equal_spec(indent):
    spec = make_spec(class_names=("bateau à voile", "ferry", "猫"))
    text = spec.to_json(indent=indent)
    back = ModelSpec.from_json(text)
    assert back == spec
    assert back.to_json(indent=indent) == text
    assert ModelSpec.from_json(text.encode("utf-8")) == spec


def test_json_lists_become_tuples_so_specs_compare_and_hash():
    data = json.loads(make_spec().to_json())
    assert isinstance(data["class_names"], list) and isinstance(data["mean"], list)
    spec = ModelSpec.from_dict(data)
    assert isinstance(spec.class_names, tuple)
    assert isinstance(spec.mean, tuple) and isinstance(spec.std, tuple)
    assert spec == make_spec()
    assert hash(spec) == hash(make_spec())


def test_defaults_and_derived_values():
    spec = ModelSpec(class_names=["a", "b"], input_size=224, resize_size=256)
    assert spec.interpolation == "bilinear"
    assert spec.mean == IMAGENET_MEAN and spec.std == IMAGENET_STD
    assert spec.schema_version == SCHEMA_VERSION
    assert spec.num_classes == 2
    assert spec.crop_pct == pytest.approx(0.875)
    assert json.loads(spec.to_json())["schema_version"] == SCHEMA_VERSION


def test_every_listed_interpolation_is_accepted():
    for name in INTERPOLATIONS:
        assert make_spec(interpolation=name).interpolation == name


def test_integer_mean_is_accepted_as_float():
    spec = make_spec(mean=[0, 1, 0])
    assert spec.mean == (0.0, 1.0, 0.0)


# --- validation ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "changes, field_name",
    [
        (dict(mean=(0.5, 0.5)), "mean"),
        (dict(mean=(0.5, 0.5, 0.5, 0.5)), "mean"),
        (dict(std=(0.2, 0.2)), "std"),
        (dict(std=(0.2, 0.2, 0.2, 0.2)), "std"),
        (dict(mean="abc"), "mean"),
        (dict(mean=(0.5, float("nan"), 0.5)), "mean"),
        (dict(std=(0.2, 0.0, 0.2)), "std"),
        (dict(std=(0.2, -0.1, 0.2)), "std"),
        (dict(input_size=0), "input_size"),
        (dict(input_size=-224), "input_size"),
        (dict(input_size=224.0), "input_size"),
        (dict(input_size="224"), "input_size"),
        (dict(input_size=True), "input_size"),
        (dict(resize_size=0), "resize_size"),
        (dict(resize_size=-1), "resize_size"),
        (dict(resize_size=256.5), "resize_size"),
        (dict(resize_size=200), "resize_size"),  # smaller than the 224 crop
        (dict(class_names=()), "class_names"),
        (dict(class_names=[]), "class_names"),
        (dict(class_names=("a", "b", "a")), "class_names"),
        (dict(class_names=("a", "")), "class_names"),
        (dict(class_names=("a", "   ")), "class_names"),
        (dict(class_names=("a", 3)), "class_names"),
        (dict(class_names="cats"), "class_names"),
        (dict(interpolation="cubic"), "interpolation"),
        (dict(interpolation="BILINEAR"), "interpolation"),
        (dict(output="probabilities"), "output"),
        (dict(backbone=3), "backbone"),
    ],
)
def test_invalid_fields_raise_spec_error_naming_the_field(changes, field_name):
    with pytest.raises(SpecError, match=f"`{field_name}`") as info:
        make_spec(**changes)
    assert isinstance(info.value, ClfError)
    # The same spec arriving as JSON fails the same way.
    with pytest.raises(SpecError, match=f"`{field_name}`"):
        ModelSpec.from_json(json.dumps(spec_dict(**{k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in changes.items()}), allow_nan=True))


def test_duplicate_class_names_are_listed():
    with pytest.raises(SpecError, match="duplicates: kayak"):
        make_spec(class_names=("kayak", "buoy", "kayak"))


def test_resize_smaller_than_crop_names_both_sizes():
    with pytest.raises(SpecError) as info:
        make_spec(input_size=224, resize_size=200)
    assert "resize_size" in str(info.value) and "input_size" in str(info.value)
    assert make_spec(input_size=224, resize_size=224).crop_pct == 1.0


def test_unknown_interpolation_lists_the_choices():
    with pytest.raises(SpecError) as info:
        make_spec(interpolation="cubic")
    for name in INTERPOLATIONS:
        assert name in str(info.value)


@pytest.mark.parametrize("version", [0, 3, 99, "2", True])
def test_unknown_schema_version_says_upgrade(version):
    with pytest.raises(SpecError, match="upgrade clfkit"):
        ModelSpec.from_json(json.dumps(spec_dict(schema_version=version)))
    with pytest.raises(SpecError, match="upgrade clfkit"):
        make_spec(schema_version=version)


def test_newer_schema_with_new_fields_reports_the_version_not_the_fields():
    data = spec_dict(schema_version=3, crop_mode="letterbox")
    with pytest.raises(SpecError, match="upgrade"):
        ModelSpec.from_dict(data)


def test_missing_schema_version():
    data = spec_dict()
    del data["schema_version"]
    with pytest.raises(SpecError, match="schema_version"):
        ModelSpec.from_dict(data)


def test_unknown_field_is_named():
    with pytest.raises(SpecError, match="crop_mode"):
        ModelSpec.from_dict(spec_dict(crop_mode="letterbox"))


@pytest.mark.parametrize("missing", ["class_names", "input_size", "resize_size"])
def test_missing_required_field_is_named(missing):
    data = spec_dict()
    del data[missing]
    with pytest.raises(SpecError, match=missing):
        ModelSpec.from_dict(data)


@pytest.mark.parametrize("text", ["", "{", "not json", '{"class_names": ["a",]}', b"\xff\xfe{"])
def test_invalid_json(text):
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.from_json(text)


@pytest.mark.parametrize("text", ["[1, 2, 3]", '"spec"', "null", "3"])
def test_json_that_is_not_an_object(text):
    with pytest.raises(SpecError, match="JSON object"):
        ModelSpec.from_json(text)


# --- replace -------------------------------------------------------------------------------------------------

def test_replace_changes_fields_and_keeps_the_rest():
    spec = make_spec()
    other = spec.replace(input_size=192, resize_size=220)
    assert (other.input_size, other.resize_size) == (192, 220)
    assert other.class_names == spec.class_names and other.mean == spec.mean
    assert spec.input_size == 224  # the original is untouched (frozen)


@pytest.mark.parametrize(
    "changes, field_name",
    [
        (dict(resize_size=100), "resize_size"),
        (dict(std=(1.0, 0.0, 1.0)), "std"),
        (dict(class_names=["a", "a"]), "class_names"),
        (dict(interpolation="fancy"), "interpolation"),
    ],
)
def test_replace_revalidates(changes, field_name):
    with pytest.raises(SpecError, match=f"`{field_name}`"):
        make_spec().replace(**changes)


def test_replace_rejects_unknown_fields():
    with pytest.raises(SpecError, match="colour_space"):
        make_spec().replace(colour_space="bgr")


def test_spec_is_frozen():
    spec = make_spec()
    with pytest.raises(AttributeError):
        spec.input_size = 1  # type: ignore[misc]


@pytest.mark.parametrize("change, message", [
    ({"class_names": {"0": "cat", "1": "dog"}}, "must be a list of names"),  # a dict would become its keys
    ({"std": (1e-40, 1.0, 1.0)}, "at least 1e-6"),  # would overflow float32 inputs to inf
    ({"mean": (1e9, 0.0, 0.0)}, "within ±1e6"),
    ({"input_size": 10**9, "resize_size": 10**9}, "supports up to 4096"),
    ({"resize_size": 10**5}, "supports up to 8192"),
])
def test_hostile_spec_values_are_refused(change, message):
    fields = {"class_names": ("cat", "dog"), "input_size": 224, "resize_size": 256, **change}
    with pytest.raises(SpecError, match=message):
        ModelSpec(**fields)


# --- schema versions and the temperature ---------------------------------------------------------------------

def _version1_json() -> str:
    """A spec exactly as clfkit's first release wrote it (no temperature, schema version 1)."""
    data = {k: v for k, v in spec_dict().items() if k != "temperature"}
    return json.dumps({**data, "schema_version": 1}, sort_keys=True, ensure_ascii=False)


def test_version_1_reads_as_uncalibrated_and_is_written_back_unchanged():
    text = _version1_json()
    spec = ModelSpec.from_json(text)
    assert spec.schema_version == 1 and spec.temperature == 1.0 and not spec.calibrated
    assert spec.to_json() == text  # no temperature appears: it would claim a calibration that never ran
    assert spec.replace(input_size=192).schema_version == 1
    assert spec.with_temperature(1.0) == make_spec()  # same contract, now version 2


def test_version_2_round_trips_the_temperature():
    spec = make_spec().with_temperature(1.734)
    assert spec.schema_version == SCHEMA_VERSION == 2 and spec.calibrated
    data = json.loads(spec.to_json())
    assert data["temperature"] == 1.734 and data["schema_version"] == 2
    assert ModelSpec.from_json(spec.to_json()) == spec
    assert spec != make_spec()  # the temperature is part of what the artifact promises
    assert make_spec().temperature == 1.0 and json.loads(make_spec().to_json())["temperature"] == 1.0


def test_a_version_1_spec_with_a_temperature_is_refused():
    data = json.loads(_version1_json())
    with pytest.raises(SpecError, match="unknown fields temperature for schema version 1"):
        ModelSpec.from_dict({**data, "temperature": 2.0})
    with pytest.raises(SpecError, match="needs schema version 2"):
        make_spec(schema_version=1, temperature=2.0)


@pytest.mark.parametrize("value", [0, -1.0, 0.001, 1e6, float("nan"), float("inf"), True, "2", None])
def test_bad_temperatures_name_the_field(value):
    with pytest.raises(SpecError, match="`temperature`"):
        make_spec(temperature=value)
