"""Pure text functions: normalize, term matching, intent rules, sentiment. No Flask, no database."""
