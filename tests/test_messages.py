"""What a user reads: our own one-line messages in the door's terms, nothing from third-party libraries (issue 17)."""

from soundsmith.cli import main


def test_unranked_candidates_warn_in_one_line_of_cli_terms(capsys, tiny_audioldm, tmp_path):
    code = main(["generate", "a dog", "-m", str(tiny_audioldm), "--steps", "1", "-n", "2", "-d", "0.032",
                 "-o", str(tmp_path / "d.wav")])
    err = capsys.readouterr().err
    assert code == 0
    warnings = [line for line in err.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith("soundsmith: warning: ") and "pass --ranker" in warnings[0]
    assert "UserWarning" not in err and "ranker=" not in err


STAGES = ("loading", "text", "denoising 2/2 steps", "decoding", "loudness -16 LUFS", "writing")


def test_the_cli_shows_each_stage_once_with_its_time(capsys, tiny_audioldm, tmp_path):
    out = tmp_path / "d.wav"
    assert main(["generate", "a dog", "-m", str(tiny_audioldm), "--steps", "2", "-d", "0.5", "-o", str(out)]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(STAGES), lines
    for line, name in zip(lines, STAGES):
        assert line.startswith(f"soundsmith: {name}") and line.endswith(" s"), line
    assert str(out) in lines[-1]


def test_python_calls_show_the_same_stages_unless_progress_is_false(capsys, tiny_audioldm):
    import soundsmith

    pipe = soundsmith.load(tiny_audioldm)
    pipe("a dog", num_inference_steps=2, audio_length_in_s=0.5, loudness=-16)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" ")[1] for line in lines] == ["loading", "text", "denoising", "decoding", "loudness"], lines
    soundsmith.load(tiny_audioldm, progress=False)("a dog", num_inference_steps=2, progress=False)
    assert capsys.readouterr().err == ""


def test_no_third_party_text_reaches_the_clis_stderr(tiny_audioldm2, tmp_path):
    """In a fresh process (the CLI's own): AudioLDM 2 loads T5, GPT-2 and CLAP through transformers, which would
    print its "Loading weights" bars, advisory notes and FutureWarnings; every line on stderr is ours."""
    import subprocess
    import sys
    from pathlib import Path

    import soundsmith

    env = {"PYTHONPATH": str(Path(soundsmith.__file__).resolve().parents[1]), "HF_HUB_OFFLINE": "1",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "soundsmith.cli", "generate", "a dog", "-m", str(tiny_audioldm2),
                           "--steps", "2", "-d", "0.5", "--max-new-tokens", "3", "-o", str(tmp_path / "d.wav")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith("soundsmith: ") for line in lines), proc.stderr
    assert "it/s" not in proc.stderr and "%|" not in proc.stderr and "Warning" not in proc.stderr


def test_a_python_warning_points_at_the_callers_line(tiny_audioldm):
    import warnings

    import soundsmith
    from soundsmith.errors import SoundsmithWarning

    pipe = soundsmith.load(tiny_audioldm, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe("a dog", num_inference_steps=1, num_waveforms_per_prompt=2, progress=False)
    ours = [w for w in caught if issubclass(w.category, SoundsmithWarning)]
    assert len(ours) == 1 and ours[0].filename == __file__, ours[0].filename
    assert "pass ranker=" in str(ours[0].message)


def test_a_missing_ranker_folder_is_named_by_its_flag(capsys, tiny_audioldm, tmp_path):
    code = main(["generate", "a dog", "-m", str(tiny_audioldm), "-n", "2", "--ranker", str(tmp_path / "missing"),
                 "--steps", "1", "-d", "0.2", "-o", str(tmp_path / "a.wav")])
    err = capsys.readouterr().err
    assert code == 2 and f"soundsmith: error: --ranker {tmp_path / 'missing'}: model folder" in err
    assert not (tmp_path / "a.wav").exists()


def test_a_missing_ranker_folder_is_named_by_its_keyword_in_python(tiny_audioldm, tmp_path):
    import pytest

    import soundsmith

    pipe = soundsmith.load(tiny_audioldm, progress=False)
    with pytest.raises(soundsmith.SoundsmithError, match=r"^ranker='[^']*missing': model folder"):
        pipe("a dog", num_waveforms_per_prompt=2, ranker=str(tmp_path / "missing"), audio_length_in_s=0.2,
             num_inference_steps=1, progress=False)
