"""The clip renderer: the Renderer protocol, profiles, the animatic and diffusion backends, voice, captions,
encoding and labels, and the dub that turns one shared picture into each viewer's clip."""
