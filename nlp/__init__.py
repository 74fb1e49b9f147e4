"""Pure text functions (tokenize, keywords, sentiment, intent); filled in by the NLP issue."""
