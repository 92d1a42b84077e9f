"""Training and fine-tuning of AudioLDM-architecture models on (audio, caption) manifests.

Stages, each a small module with one objective, sharing `loop.train` (accelerate, resumable atomic checkpoints,
progress, losses.jsonl, pidfile): `clap` (CLAP towers + BPE tokenizer, contrastive, text distilled from a sentence
encoder), `vae` (mel KL autoencoder), `unet` (ε-prediction latent diffusion with conditioning dropout), `vocoder`
(the pretrained universal HiFi-GAN converted, not trained), `demo` (assemble the diffusers-layout folder),
`finetune` (full UNet or LoRA), `adherence` (held-out prompts → classifier table). CLI: `soundsmith train …`,
`soundsmith finetune …` (cli.py); recipe: scripts/train_demo.sh.
"""
