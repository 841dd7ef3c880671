"""The golden dataset: a small company as literal rows, and every value hand-computed."""
