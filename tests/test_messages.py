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
