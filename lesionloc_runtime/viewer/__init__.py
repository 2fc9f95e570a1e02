"""The study page (`OUT/<study>/study.html`) and the batch index (`OUT/index.html`): HTML files
opened from disk, with everything they need inline or written beside them."""

# its modules are used directly: viewer.page, viewer.index, viewer.jpeg
__all__: list[str] = []
