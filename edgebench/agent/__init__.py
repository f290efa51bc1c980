"""The measurement agent: ``python -m edgebench.agent JOB.json``.

Runs on the device (a local subprocess or over SSH) and needs only the standard library,
numpy, psutil and the runtime named in the job. Reads a JSON job, writes a JSON result
atomically to the job's ``result`` path, and streams progress as JSON lines on stderr. See
:mod:`edgebench.agent.protocol` for the format.
"""
