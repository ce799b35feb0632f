"""`python -m vae_tf <command> [flags]`: every command under one name (see vae_tf/cli.py)."""

from vae_tf import cli


if __name__ == "__main__":
    cli.dispatch()
