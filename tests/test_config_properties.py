"""Property: any JSON value in any field of any config file of a model folder gives CheckpointError or a model that
loads — never another exception. For the files soundsmith reads itself (model index, UNet, VAE, vocoder,
projection, scheduler, soundsmith.json), a folder that loads must also generate: one step gives audio or a
SoundsmithError (an unsupported sampler name, say), never a TypeError from deep inside.

Hypothesis draws the mutations: a key's value replaced (by null, booleans, any integer, NaN, ±inf, strings, lists,
objects), an element of a list replaced, a key removed or added, or the whole file replaced. The default run is
derandomised and small enough for CI (CONFIG_EXAMPLES per file, about 250 examples in all);
`HYPOTHESIS_PROFILE=explore` draws ten times as many, at random.
"""

import json
import os
import shutil

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import soundsmith  # noqa: E402
from soundsmith import CheckpointError, SoundsmithError  # noqa: E402

CONFIG_EXAMPLES = 20
settings.register_profile("ci", max_examples=CONFIG_EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("explore", parent=settings.get_profile("ci"), max_examples=10 * CONFIG_EXAMPLES,
                          derandomize=False)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)


@st.composite
def mutations(draw, original):
    """(description, new file content) for a JSON object `original`."""
    keys = sorted(original) if isinstance(original, dict) else []
    kind = draw(st.sampled_from(["replace", "replace", "replace", "element", "remove", "add", "whole"]
                                if keys else ["whole"]))
    data = json.loads(json.dumps(original))
    if kind == "whole":
        value = draw(json_values)
        return f"whole file = {value!r}", value
    if kind == "add":
        key, value = draw(st.text(max_size=10)), draw(json_values)
        data[key] = value
        return f"added {key!r} = {value!r}", data
    key = draw(st.sampled_from(keys))
    if kind == "remove":
        del data[key]
        return f"removed {key!r}", data
    if kind == "element" and isinstance(data[key], list) and data[key]:
        i, value = draw(st.integers(0, len(data[key]) - 1)), draw(json_values)
        data[key][i] = value
        return f"{key}[{i}] = {value!r}", data
    value = draw(json_values)
    data[key] = value
    return f"{key} = {value!r}", data


# (fixture, file, whether a successful load must also generate)
CASES = [
    ("tiny_audioldm", "model_index.json", True),
    ("tiny_audioldm", "unet/config.json", True),
    ("tiny_audioldm", "vae/config.json", True),
    ("tiny_audioldm", "vocoder/config.json", True),
    ("tiny_audioldm", "scheduler/scheduler_config.json", True),
    ("tiny_audioldm", "soundsmith.json", True),
    ("tiny_audioldm", "text_encoder/config.json", False),
    ("tiny_audioldm", "tokenizer/tokenizer_config.json", False),
    ("tiny_audioldm2", "model_index.json", False),
    ("tiny_audioldm2", "projection_model/config.json", True),
    ("tiny_audioldm2", "text_encoder_2/config.json", False),
    ("tiny_audioldm2", "language_model/config.json", False),
]

_COPIES = {}


def private_copy(request, fixture, tmp_path_factory):
    """One damageable copy of each tiny folder per session (each example restores the file it changed)."""
    if fixture not in _COPIES:
        folder = shutil.copytree(request.getfixturevalue(fixture), tmp_path_factory.mktemp("mutable") / fixture)
        (folder / "soundsmith.json").write_text(json.dumps({"num_inference_steps": 2, "guidance_scale": 2.5}))
        _COPIES[fixture] = folder
    return _COPIES[fixture]


@pytest.mark.parametrize("fixture, file, generate", CASES, ids=[f"{f}:{name}" for f, name, _ in CASES])
@settings(settings.get_profile(PROFILE))
@given(data=st.data())
def test_any_json_in_any_config_field_gives_checkpoint_error_or_a_working_model(request, tmp_path_factory, fixture,
                                                                               file, generate, data):
    folder = private_copy(request, fixture, tmp_path_factory)
    path = folder / file
    original_text = path.read_text()
    what, content = data.draw(mutations(json.loads(original_text)))
    try:
        path.write_text(json.dumps(content))
        try:
            pipe = soundsmith.load(folder, device="cpu")
        except CheckpointError as e:
            assert "\n" not in str(e), (what, str(e))
            return
        if generate:
            try:
                out = pipe("a dog barking", num_inference_steps=1, audio_length_in_s=8 * pipe.min_seconds, seed=0,
                           rank=False)
            except SoundsmithError:
                return
            assert out.audios.ndim == 2 and out.audios.shape[1] > 0, what
    finally:
        path.write_text(original_text)
