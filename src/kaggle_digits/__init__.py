"""kaggle-digits: a k-fold CNN ensemble toolkit for Kaggle's Digit Recognizer."""

__version__ = "0.1.0"
