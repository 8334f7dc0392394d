"""`python -m hourglass.train --config FILE`: what the launchers start on every rank."""

from hourglass.train.launch import main

if __name__ == "__main__":
    main()
