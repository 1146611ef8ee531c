"""{% signer_block "name" %}...{% endsigner_block %} and {% frame_block %}...{% endframe_block %}.

The two kinds of parts of a letter (pledges.letter_layout): what the context's `layout` lays out
of each. Used only by templates/letters/_letter.html, whose context has `letter_index`.
"""

from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from pledges.letter_layout import FULL_LAYOUT, signer_block_id

register = template.Library()

PAGE_BREAK = '<div class="signer-page-break"></div>'


class SignerBlockNode(template.Node):
    def __init__(self, name, nodelist):
        self.name = name
        self.nodelist = nodelist

    def render(self, context):
        layout = context.get("layout", FULL_LAYOUT)
        name = self.name.resolve(context)
        block_id = signer_block_id(letter_index=context.get("letter_index", 0), name=name)
        if not layout.shows_signer:
            if layout.heights is None:
                return format_html('<section class="signer-block" id="{}"></section>', block_id)
            # Heights are rounded to a thousandth of a CSS px (pledges.letter_frames), so that blocks
            # of the same lines share a frame: under a thousandth of a point, nothing to the eye.
            return format_html(
                '<section class="signer-block" id="{}" style="height: {}px"></section>',
                block_id,
                f"{layout.heights[name]:.3f}",
            )
        content = self.nodelist.render(context)
        placement = None if layout.shows_frame else layout.placements.get(name)
        if placement is None:
            # In the flow: the whole letter, or signer blocks not placed yet (read for their lines).
            return format_html('<section class="signer-block" id="{}">{}</section>', block_id, content)
        return format_html(
            '{}<section class="signer-block signer-block--placed" id="{}" '
            'style="left: {}px; top: {}px; width: {}px">{}</section>',
            mark_safe(PAGE_BREAK * placement.breaks_before),  # noqa: S308 - a constant
            block_id,
            # Where the frame put the block's box, to a millionth of a CSS px: the same lines.
            f"{placement.left:.6f}",
            f"{placement.top:.6f}",
            f"{placement.width:.6f}",
            content,
        )


class FrameBlockNode(template.Node):
    def __init__(self, nodelist):
        self.nodelist = nodelist

    def render(self, context):
        layout = context.get("layout", FULL_LAYOUT)
        return self.nodelist.render(context) if layout.shows_frame else ""


@register.tag
def signer_block(parser, token):
    """A part holding the signer's own text; the argument names it, uniquely within the letter."""
    bits = token.split_contents()
    if len(bits) != 2:
        raise template.TemplateSyntaxError("{% signer_block %} takes one argument: the block's name")
    nodelist = parser.parse(("endsigner_block",))
    parser.delete_first_token()
    return SignerBlockNode(parser.compile_filter(bits[1]), nodelist)


@register.tag
def frame_block(parser, token):
    """A part every letter with the same text and caisse shares."""
    if len(token.split_contents()) != 1:
        raise template.TemplateSyntaxError("{% frame_block %} takes no argument")
    nodelist = parser.parse(("endframe_block",))
    parser.delete_first_token()
    return FrameBlockNode(nodelist)
