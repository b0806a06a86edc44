"""Template errors: one line each, Go's text, in lamina's error hierarchy."""

from lamina.errors import LaminaError


class TemplateError(LaminaError):
    """A template that cannot be parsed or executed; the text is Go's."""


class TemplateParseError(TemplateError):
    pass


class TemplateExecError(TemplateError):
    pass
