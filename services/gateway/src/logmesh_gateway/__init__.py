"""logmesh gateway service.

Not built yet (see the open issues): this package only reserves its place in the workspace.
"""
