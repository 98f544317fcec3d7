"""The clip renderer: the Renderer protocol, profiles, the animatic and diffusion backends, voice, captions,
encoding and labels."""
