"""Published models as exportable sources: their files read without executing pickled code,
their architectures rebuilt in torch with the published tensor names, their tokenizers."""
