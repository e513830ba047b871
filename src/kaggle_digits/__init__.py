"""kaggle-digits: a k-fold CNN ensemble toolkit for Kaggle's Digit Recognizer and any other
pixel-CSV image competition described by a spec in competition/."""

__version__ = "0.1.0"
