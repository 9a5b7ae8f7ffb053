"""Mint-ready export: generated images, ERC-721 metadata, a collection summary and a contact sheet.

The stage above evaluation: it reads a run's generator (the collection's champion by default), filters
near-copies of training items, labels traits with the collection's trait classifier, and writes files.
"""
