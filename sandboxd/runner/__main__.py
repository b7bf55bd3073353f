"""``python3 -m sandboxd.runner`` starts the fork-server (the image's CMD)."""

from .forkserver import main

if __name__ == "__main__":
    main()
