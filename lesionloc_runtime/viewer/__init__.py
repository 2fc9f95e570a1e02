"""The study page (`OUT/<study>/study.html`) and the batch index (`OUT/index.html`): HTML files
opened from disk, with everything they need inline or written beside them."""
