"""Paper figures for lto_ref (paper 1 Figures 1–3 and the blog's figures); filled in by a later issue."""
