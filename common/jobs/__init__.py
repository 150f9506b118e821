"""Job submission, shared by the API and the embedded CLI.

A *job* is one unit of work on one volume of one host (backup, restore). ``service``
validates a request against the catalog, records the job (state ``queued``) and hands it to
a ``Dispatcher`` by task *name* — the API never imports the task code. In the fleet the
dispatcher sends a Celery message to queue ``host.<name>``; embedded, it runs the same task
function in a thread of the current process.
"""
