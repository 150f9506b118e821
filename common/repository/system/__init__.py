"""What the repository asks of the local machine; nothing here knows the format.

``sparse`` finds the holes of sparse files (read only the data, write only the data);
``malloc`` keeps freed buffers for reuse in the data-heavy operations; ``worker_pipe``
starts worker processes (``python -S -m module``, never ``fork``) and talks to them over
a pipe — backup reads small files in them, restore writes batches in them; a worker runs
``worker_serve``, the pipe's other end, and imports nothing of the parent's side.
"""
