"""Write a run's report, or a page comparing runs.

    python -m vae_tf.report --run_dir=outputs/<run>
    python -m vae_tf.report --compare outputs/<run_a> outputs/<run_b> --output=outputs/compare.html

Training rewrites <run>/report.html after every epoch; this writes it again (say,
after copying a run) or compares runs (vae_tf/views/report_page.py builds the pages).
"""

from absl import flags

from vae_tf import cli
from vae_tf.errors import UserError
from vae_tf.run import rundir
from vae_tf.views.report_page import write_compare, write_report


FLAGS = flags.FLAGS
FLAG_NAMES = ("run_dir", "compare", "output")


def main(argv):
    run_dirs = argv[1:]
    if FLAGS.compare:
        if len(run_dirs) < 2:
            raise UserError("--compare needs two or more run directories after it.")
        path = write_compare(run_dirs, FLAGS.output)
    else:
        if run_dirs:
            raise UserError(f"Unexpected arguments {' '.join(run_dirs)}: give "
                            "--run_dir=<run>, or --compare <run> <run> ...")
        if not FLAGS.run_dir:
            raise UserError("Give --run_dir=<run>, or --compare <run> <run> ...")
        path = write_report(rundir.open_existing(FLAGS.run_dir).path, FLAGS.output)
    print(f"Wrote {path}")


def console_main():
    """`python -m vae_tf.report`, `vae-tf report` and `vae-tf-report`."""
    cli.run(main, FLAG_NAMES, positional=True)


if __name__ == "__main__":
    console_main()
