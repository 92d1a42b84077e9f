"""One request type and one engine: every door describes a job the same way, files say how to make themselves again,
and the layers import each other without cycles."""

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

import soundsmith
from soundsmith import InvalidArgument, Request, engine
from soundsmith.audio import read_metadata, write
from soundsmith.cli import main

EVERY_TASK = [
    Request(prompt="a dog barking", negative_prompt="noise", duration=5.0, steps=10, guidance=3.0, seed=7,
            sampler="dpmpp-2m", sampler_options={"use_karras_sigmas": True}, eta=0.0, candidates=3, rank=False,
            model="demo", name="dog", loudness=-16.0),
    Request(prompt=["a dog", "a cat"], negative_prompt=["noise", "hum"], quality="draft", transcription=["hi", "yo"],
            max_new_tokens=512, ranker="/models/clap"),
    Request(task="reconstruct", input="/audio/take.wav", model="audioldm2"),
    Request(task="transfer", input="drums.wav", prompt="a jazz kit", strength=0.6, seed=1, steps=20),
    Request(task="inpaint", input="street.wav", prompt="a car horn", masks=((2.0, 3.5), (7.0, 7.5)), seed=2),
    Request(task="upscale", input="call.wav", cutoff=4000.0),
    Request(task="upscale", input="call.wav", prompt="a phone call", seed=3),
    Request(task="extend", input="loop.wav", prompt="building up", seconds=10.0, candidates=2),
]


@pytest.mark.parametrize("request_", EVERY_TASK, ids=lambda r: r.task)
def test_every_task_round_trips_through_plain_json(request_):
    data = request_.to_dict()
    assert data["version"] == 1 and data["task"] == request_.task
    assert json.loads(json.dumps(data)) == data  # plain JSON
    again = Request.from_dict(json.loads(json.dumps(data)))
    assert again == request_ and again.to_dict() == data


@pytest.mark.parametrize("data, fragment", [
    ({"prompt": "a", "sed": 3}, "unknown key 'sed'"),
    ({"prompt": "a", "version": 2}, "version=2"),
    ({"prompt": "a", "task": "remix"}, "task='remix'"),
    ({"prompt": 3}, "prompt=3 has the wrong type"),
    ({"prompt": ""}, "\"prompt\" is missing or empty"),
    ({}, "\"prompt\" is missing or empty"),
    ({"prompt": "a", "negative_prompt": 5}, "negative_prompt=5 has the wrong type"),
    ({"prompt": "a", "duration": "5"}, "duration='5' has the wrong type"),
    ({"prompt": "a", "duration": -1}, "duration=-1"),
    ({"prompt": "a", "duration": 1e9}, "duration=1000000000.0"),
    ({"prompt": "a", "steps": 2.5}, "steps=2.5 has the wrong type"),
    ({"prompt": "a", "steps": 0}, "steps=0"),
    ({"prompt": "a", "guidance": -1}, "guidance=-1"),
    ({"prompt": "a", "guidance": 1e30}, "guidance=1e+30"),
    ({"prompt": "a", "seed": -1}, "seed=-1"),
    ({"prompt": "a", "seed": "7"}, "seed='7' has the wrong type"),
    ({"prompt": "a", "sampler": "fast"}, "sampler 'fast' is not supported"),
    ({"prompt": "a", "sampler_options": [1]}, "sampler_options=[1] has the wrong type"),
    ({"prompt": "a", "quality": "best"}, "quality='best'"),
    ({"prompt": "a", "eta": 1e6}, "eta=1000000.0"),
    ({"prompt": "a", "candidates": 0}, "candidates=0"),
    ({"prompt": "a", "candidates": 10000}, "at most 32"),
    ({"prompt": "a", "rank": "yes"}, "rank='yes' has the wrong type"),
    ({"prompt": "a", "max_new_tokens": 0}, "max_new_tokens=0"),
    ({"prompt": "a", "name": "../up"}, "output name '../up'"),
    ({"prompt": "a", "loudness": 5}, "loudness=5"),
    ({"prompt": "a", "model": ""}, "model=''"),
    ({"prompt": "a \ud800 dog"}, "not valid Unicode"),
    ({"prompt": "a", "input": "x.wav"}, "input does not apply to generate"),
    ({"prompt": "a", "strength": 0.5}, "strength does not apply to generate"),
    ({"task": "transfer", "prompt": "a"}, "\"input\" is missing"),
    ({"task": "transfer", "input": "x.wav", "prompt": "a", "duration": 3}, "duration does not apply to transfer"),
    ({"task": "transfer", "input": "x.wav", "prompt": "a", "strength": 2}, "strength=2"),
    ({"task": "transfer", "input": "x.wav", "prompt": ["a", "b"]}, "one prompt for the one input"),
    ({"task": "inpaint", "input": "x.wav", "prompt": "a"}, "inpaint needs masks"),
    ({"task": "inpaint", "input": "x.wav", "prompt": "a", "masks": [[2, 1]]}, "mask 2-1"),
    ({"task": "inpaint", "input": "x.wav", "prompt": "a", "masks": [[0, 2], [1, 3]]}, "overlap"),
    ({"task": "upscale", "input": "x.wav", "cutoff": 0}, "cutoff=0"),
    ({"task": "extend", "input": "x.wav", "prompt": "a"}, "extend needs seconds"),
    ({"task": "extend", "input": "x.wav", "prompt": "a", "seconds": 0}, "seconds=0"),
    ({"task": "reconstruct", "input": "x.wav", "seed": 3}, "seed does not apply to reconstruct"),
    ([1, 2], "expected a JSON object"),
])
def test_from_dict_refuses_each_bad_field_by_name(data, fragment):
    with pytest.raises(InvalidArgument) as info:
        Request.from_dict(data)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_python_and_cli_doors_name_fields_their_own_way():
    from soundsmith.request import CLI_LABELS, PYTHON_LABELS

    with pytest.raises(InvalidArgument, match="num_inference_steps=0"):
        Request(prompt="a", steps=0, _labels=PYTHON_LABELS)
    with pytest.raises(InvalidArgument, match=r"--strength 1\.5"):
        Request(task="transfer", input="x", prompt="a", strength=1.5, _labels=CLI_LABELS)
    with pytest.raises(InvalidArgument, match="^steps=0"):
        Request(prompt="a", steps=0)


def test_the_engine_fills_the_models_defaults_and_records_them(tiny_audioldm):
    pipe = soundsmith.load(tiny_audioldm, device="cpu")
    out = engine.run(pipe, Request(prompt="a dog", duration=0.032, seed=0))
    assert out.request.steps == pipe.default_steps and out.request.guidance == pipe.default_guidance
    assert out.request.sampler == "default" and out.request.model == str(tiny_audioldm)
    assert engine.resolve(pipe, out.request) == out.request  # resolving twice changes nothing
    direct = pipe("a dog", audio_length_in_s=0.032, seed=0).audios
    assert np.array_equal(out.audios, direct)


def test_audioldm2_honours_a_models_soundsmith_json(tiny_audioldm2, tmp_path):
    folder = shutil.copytree(tiny_audioldm2, tmp_path / "own-defaults")
    (folder / "soundsmith.json").write_text('{"num_inference_steps": 3, "guidance_scale": 1.5}')
    pipe = soundsmith.load(folder, device="cpu")
    steps = []
    out = pipe("a dog", audio_length_in_s=0.032, seed=0, callback=lambda i, t, x: steps.append(i))
    assert len(steps) == 3 and out.request.guidance == 1.5
    steps.clear()
    pipe("a dog", audio_length_in_s=0.032, seed=0, num_inference_steps=200, callback=lambda i, t, x: steps.append(i),
         callback_steps=100)
    assert len(steps) == 2  # an explicit 200 is 200, even though it equals the signature's default


def test_generate_from_a_file_makes_the_same_audio_bit_for_bit(capsys, tiny_audioldm, tmp_path):
    first = tmp_path / "first.wav"
    assert main(["generate", "a dog barking", "-m", str(tiny_audioldm), "--steps", "3", "-q", "draft", "--negative",
                 "noise", "-d", "0.05", "-o", str(first)]) == 0
    again = tmp_path / "again.wav"
    assert main(["generate", "--from", str(first), "-o", str(again)]) == 0
    assert first.read_bytes() == again.read_bytes()  # samples and metadata
    changed = tmp_path / "changed.wav"
    assert main(["generate", "--from", str(first), "--seed", "12345", "-o", str(changed)]) == 0
    meta, changed_meta = read_metadata(first), read_metadata(changed)
    measured = {"seed", "loudness_measured_lufs", "loudness_gain_db", "loudness_limited", "loudness_output_lufs",
                "true_peak_dbtp"}  # what the loudness record measured differs with the sound
    assert changed_meta["seed"] == 12345 and {k: v for k, v in changed_meta.items() if k not in measured} == \
        {k: v for k, v in meta.items() if k not in measured}
    assert not np.array_equal(soundfile.read(first)[0], soundfile.read(changed)[0])
    capsys.readouterr()


def test_an_edit_is_made_again_from_its_file(capsys, tiny_audioldm, tmp_path):
    source = tmp_path / "in.wav"
    t = np.arange(4096) / 16000
    soundfile.write(source, 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    first = tmp_path / "horn.wav"
    assert main(["inpaint", str(source), "a car horn", "--mask", "0.05-0.15", "-m", str(tiny_audioldm), "--steps",
                 "2", "-o", str(first)]) == 0
    meta = read_metadata(first)
    assert meta["task"] == meta["command"] == "inpaint" and meta["masks"] == [[0.05, 0.15]]
    again = tmp_path / "again.wav"
    assert main(["generate", "--from", str(first), "-o", str(again)]) == 0
    assert first.read_bytes() == again.read_bytes()
    capsys.readouterr()


def test_a_file_without_soundsmith_metadata_is_one_line(capsys, tmp_path):
    plain = tmp_path / "plain.wav"
    soundfile.write(plain, np.zeros(1600), 16000)
    foreign = tmp_path / "foreign.wav"
    write(foreign, torch.zeros(1600), 16000, {"artist": "someone"})
    for path in (plain, foreign):
        assert main(["generate", "--from", str(path), "-o", str(tmp_path / "x.wav")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"soundsmith: error: {path} has no soundsmith metadata: only files soundsmith wrote can be "
                       f"made again"]


def test_files_written_before_requests_had_a_version_are_read(tiny_audioldm):
    legacy = {"prompt": "a dog", "negative_prompt": None, "transcription": None, "model": "demo", "seed": 5,
              "steps": 3, "guidance": 2.5, "sampler": "default", "eta": 0.0, "duration": 2.97, "candidates": 1,
              "dtype": "float32", "soundsmith": "0.1.0"}
    assert Request.from_metadata(legacy) == Request(prompt="a dog", model="demo", seed=5, steps=3, guidance=2.5,
                                                    sampler="default", duration=2.97)
    edit = {"command": "inpaint", "input": "/x.wav", "prompt": "a horn", "masks": ["2.0-3.5"], "model": "demo",
            "dtype": "float32", "duration": 5.0, "seed": 1, "steps": 2, "guidance": 2.5, "sampler": "default",
            "eta": 0.0, "negative_prompt": None, "candidates": 1, "soundsmith": "0.1.0"}
    assert Request.from_metadata(edit).masks == ((2.0, 3.5),)


# ---- layers --------------------------------------------------------------------------------------------------

def _imports(path: Path, package: Path) -> set[str]:
    """Modules of the package that `path` imports (module level and inside functions)."""
    module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[:len(module.split(".")) - node.level + (path.name == "__init__.py")]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate, package) else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "soundsmith" or m.startswith("soundsmith.")}


def _exists(module: str, package: Path) -> bool:
    parts = module.split(".")[1:]
    return package.joinpath(*parts).with_suffix(".py").exists() or package.joinpath(*parts, "__init__.py").exists()


def test_the_library_never_imports_the_cli_and_has_no_import_cycle():
    package = Path(soundsmith.__file__).parent
    graph = {}
    for path in package.rglob("*.py"):
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[module] = {m for m in _imports(path, package) if m != module and m != "soundsmith"}
    cli_side = {"soundsmith.cli", "soundsmith.train.cli"}
    for module, targets in graph.items():
        if module not in cli_side and not module.endswith("__init__"):
            assert "soundsmith.cli" not in targets, f"{module} imports the CLI"
    # no cycle among modules (package __init__ re-exports excluded: they are the public face, not a layer)
    edges = {m: {t for t in ts if t in graph and not t.endswith("__init__") and t != "soundsmith.pipelines"}
             for m, ts in graph.items() if m != "soundsmith.pipelines"}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " → ".join(trail[trail.index(nxt):] + [nxt]))
            if not state.get(nxt):
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in edges:
        if not state.get(node):
            visit(node, [node])
