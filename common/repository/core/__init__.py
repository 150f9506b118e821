"""The repository format: what is stored, how it is named and sealed, and how it is read.

``ids`` names objects and lays out their storage keys; ``crypto`` seals them; ``keys``
wraps the master key in passphrase key files; ``config`` is the object every writer
agrees on; ``chunker`` cuts files into chunks; ``blob`` compresses and seals one chunk or
tree; ``pack`` holds many blobs in one storage object; ``index`` says which pack holds a
blob; ``tree`` lists a directory; ``snapshot`` names the root tree of one backup;
``locks`` keep prune away from live writers. ``repository`` opens (or creates) a
repository: a ``Repository`` carries its backend, config, key and codecs, and owns its
index — blobs and trees are read through it.
"""
