"""The pure core of phasewise: model, graph, state, store, sagas. No I/O, no threads."""
