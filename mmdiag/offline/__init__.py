"""Audits of models mmdiag cannot load: the suite's questions exported for another harness, its answers read back.

``mmdiag export`` runs the probes that need only answers with a recording adapter and writes every (image, question)
they ask; ``mmdiag audit --answers FILE --export DIR`` runs the same probes with a replay adapter that answers from
the file. Items are keyed by content (the image's pixels and the question), so the audit finds its answers whatever
order or batching either side used.
"""
