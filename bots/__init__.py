"""Example bots shipped with botkit, wired in the top-level bots.yaml."""
