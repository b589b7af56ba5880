"""``python -m cairnflow.cli``: the same as the ``cairnflow`` command."""

from cairnflow.cli import main

# Guarded: worker processes of the processes executor re-import the main module.
if __name__ == "__main__":
    main()
