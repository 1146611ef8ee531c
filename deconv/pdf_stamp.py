"""Stamp the pages of one tagged PDF onto those of another, keeping a single correct structure tree.

Used to print many letters that share most of their text (pledges.letters_batch): the shared part
(the "frame") is laid out once, each signer's own text (the "layer") is laid out apart at the
frame's positions, and this module puts layer page i onto frame page i.

Both PDFs are WeasyPrint's tagged output (PDF/UA): every piece of text is a marked-content
sequence (BDC ... EMC) with an MCID, the page's ParentTree entry maps each MCID to its structure
element, and the structure tree gives the reading order. The frame holds, where each layer block
goes, an empty structure element of type `placeholder_type` (an empty <section>: /Sect). Stamping:

1. Content: the frame page's content, then the layer page's, each inside q ... Q (WeasyPrint's
   streams change the coordinate system at their top level). The layer's MCIDs are shifted past
   the frame page's, and its resource names (fonts, graphics states...) prefixed, so that
   nothing collides.
2. Resources: the layer's fonts and other resources are copied under their prefixed names.
3. Structure: the n-th placeholder of the frame, in reading order, receives the children of the
   n-th placeholder of the layer (on the same page); the layer's other marked content (its page
   margins) is mapped, unlinked, as WeasyPrint maps the frame's own. The frame's other ParentTree
   entries (its annotations') are kept.

Anything that does not match (page or placeholder counts, a placeholder on another page, an MCID
without its element, annotations in the layer) raises StampError, as does any PDF the code does
not expect: the caller then makes the document another way, never a letter with a wrong structure.
"""

import hashlib
import io

import pikepdf
from pikepdf import Array, Dictionary, Name, Operator

LAYER_PREFIX = "L"
# The resource category each operator's name operand refers to (ISO 32000-1, 8.2 and 14.6).
OPERAND_RESOURCES = {
    "Tf": (0, "/Font"),
    "gs": (0, "/ExtGState"),
    "Do": (0, "/XObject"),
    "cs": (0, "/ColorSpace"),
    "CS": (0, "/ColorSpace"),
    "sh": (0, "/Shading"),
    "scn": (-1, "/Pattern"),
    "SCN": (-1, "/Pattern"),
    "BDC": (1, "/Properties"),
    "DP": (1, "/Properties"),
}


class StampError(ValueError):
    """The layer cannot be stamped onto the frame without breaking the letter or its structure."""


def pdf_stamp(*, frame: bytes, layer: bytes, placeholder_type: str = "/Sect") -> bytes:
    """The frame with the layer's pages stamped onto its own, page for page (module docstring)."""
    try:
        return _stamp(frame=frame, layer=layer, placeholder_type=placeholder_type)
    except StampError:
        raise
    except (pikepdf.PdfError, AttributeError, IndexError, KeyError, TypeError, ValueError) as error:
        # A PDF shaped otherwise than WeasyPrint's (a missing key, an MCID out of range...).
        raise StampError(f"unexpected PDF structure: {error!r}"[:500]) from error


def _stamp(*, frame: bytes, layer: bytes, placeholder_type: str) -> bytes:
    with pikepdf.open(io.BytesIO(frame)) as frame_pdf, pikepdf.open(io.BytesIO(layer)) as layer_pdf:
        if len(frame_pdf.pages) != len(layer_pdf.pages):
            raise StampError(f"{len(layer_pdf.pages)} layer pages for {len(frame_pdf.pages)} frame pages")
        frame_root = frame_pdf.Root.StructTreeRoot
        layer_root = layer_pdf.Root.StructTreeRoot
        frame_mcids, frame_others = _parent_tree_pages(root=frame_root)
        layer_mcids, layer_others = _parent_tree_pages(root=layer_root)
        if len(frame_mcids) != len(frame_pdf.pages) or len(layer_mcids) != len(layer_pdf.pages):
            raise StampError("a page has no entry in its document's ParentTree")
        if layer_others or any("/Annots" in page.obj for page in layer_pdf.pages):
            raise StampError("the layer has annotations (links), which stamping does not carry over")
        offsets = [len(mcids) for mcids in frame_mcids]
        resources_copied: dict = {}
        for number, (frame_page, layer_page) in enumerate(zip(frame_pdf.pages, layer_pdf.pages, strict=True)):
            _stamp_content(
                frame_pdf=frame_pdf,
                frame_page=frame_page,
                layer_pdf=layer_pdf,
                layer_page=layer_page,
                page_number=number,
                offset=offsets[number],
                resources_copied=resources_copied,
            )

        # Per frame page, the structure element of each MCID: the frame's, then the layer's as copied.
        elements = [
            frame + [None] * len(layer) for frame, layer in zip(frame_mcids, layer_mcids, strict=True)
        ]
        layer_pages = {page.objgen: number for number, page in enumerate(layer_pdf.pages)}
        frame_pages = {page.objgen: number for number, page in enumerate(frame_pdf.pages)}
        copier = _StructureCopier(
            frame_pdf=frame_pdf,
            layer_pdf=layer_pdf,
            layer_pages=layer_pages,
            offsets=offsets,
            elements=elements,
        )
        frame_slots = _elements_of_type(root=frame_root, type_name=placeholder_type)
        layer_slots = _elements_of_type(root=layer_root, type_name=placeholder_type)
        if len(frame_slots) != len(layer_slots):
            raise StampError(f"{len(layer_slots)} layer blocks for {len(frame_slots)} frame placeholders")
        for frame_slot, layer_slot in zip(frame_slots, layer_slots, strict=True):
            if len(frame_slot.K):
                raise StampError("a frame placeholder is not empty")
            if frame_pages.get(frame_slot.Pg.objgen) != layer_pages.get(layer_slot.Pg.objgen):
                raise StampError("a layer block is not on the page of its frame placeholder")
            for kid in layer_slot.K:
                frame_slot.K.append(copier.copy(kid, parent=frame_slot))
        # Marked content outside the blocks (the footer in the page margins): mapped, as WeasyPrint
        # maps the frame's own margins, to elements that the tree does not link.
        document = frame_root.K[0]
        for number, mcids in enumerate(layer_mcids):
            for mcid, element in enumerate(mcids):
                if elements[number][offsets[number] + mcid] is None:
                    copier.copy(element, parent=document)
        for number, page_elements in enumerate(elements):
            if any(element is None for element in page_elements):
                raise StampError(f"page {number + 1}: marked content without a structure element")
        pages = [
            item for number, page_elements in enumerate(elements) for item in (number, Array(page_elements))
        ]
        frame_root.ParentTree = frame_pdf.make_indirect(Dictionary(Nums=Array(pages + frame_others)))

        output = io.BytesIO()
        # fix_metadata_version: the frame's XMP already names its PDF version.
        frame_pdf.save(output, compress_streams=True, fix_metadata_version=False)
        return output.getvalue()


def _parent_tree_pages(*, root) -> tuple[list[list], list]:
    """WeasyPrint's ParentTree (a flat Nums): per page, the structure element of each MCID, and the
    other entries (annotations' StructParent keys and elements, after the pages') as they are."""
    nums = root.ParentTree.Nums
    pages = {}
    others = []
    for index in range(0, len(nums), 2):
        key, value = nums[index], nums[index + 1]
        if isinstance(value, Array):
            pages[int(key)] = list(value)
        else:
            others += [key, value]
    if sorted(pages) != list(range(len(pages))):
        raise StampError("the ParentTree's page entries are not numbered 0, 1, 2...")
    return [pages[number] for number in range(len(pages))], others


def _elements_of_type(*, root, type_name: str) -> list:
    """The structure elements of a type, in reading order (depth first)."""
    found = []

    def walk(element):
        if not isinstance(element, Dictionary):
            return
        if element.get("/S") == type_name:
            found.append(element)
        for kid in element.get("/K", []):
            walk(kid)

    for kid in root.K:
        walk(kid)
    return found


class _StructureCopier:
    """Copies layer structure elements into the frame, with their MCIDs shifted and pages remapped."""

    def __init__(self, *, frame_pdf, layer_pdf, layer_pages: dict, offsets: list[int], elements: list[list]):
        self.frame_pdf = frame_pdf
        self.layer_pdf = layer_pdf
        self.layer_pages = layer_pages
        self.offsets = offsets
        self.elements = elements

    def copy(self, element, *, parent):
        page_number = self.layer_pages.get(element.Pg.objgen) if "/Pg" in element else None
        if page_number is None:
            raise StampError("a layer structure element names no page of the layer")
        copied = self.frame_pdf.make_indirect(
            Dictionary(
                Type=Name.StructElem,
                S=element.S,
                P=parent,
                Pg=self.frame_pdf.pages[page_number].obj,
                K=Array(),
            )
        )
        for key in ("/Alt", "/ActualText", "/Lang", "/E", "/A"):
            if key in element:
                copied[key] = _copy_foreign(target=self.frame_pdf, source=self.layer_pdf, value=element[key])
        kids = element.K if isinstance(element.K, Array) else [element.K]
        for kid in kids:
            if isinstance(kid, int):
                mcid = self.offsets[page_number] + int(kid)
                copied.K.append(mcid)
                self.elements[page_number][mcid] = copied
            elif isinstance(kid, Dictionary) and kid.get("/Type", Name.StructElem) == Name.StructElem:
                copied.K.append(self.copy(kid, parent=copied))
            else:
                raise StampError("a layer structure element holds an object reference (annotation)")
        return copied


def _copy_foreign(*, target, source, value):
    """`value`, an object of the PDF `source`, copied into `target` with what it refers to."""
    if isinstance(value, Array | Dictionary | pikepdf.Stream) and not value.is_indirect:
        # copy_foreign takes only indirect objects.
        value = source.make_indirect(value)
    return target.copy_foreign(value) if isinstance(value, pikepdf.Object) and value.is_indirect else value


def _font_tag(*, font) -> str:
    base_font = str(font.get("/BaseFont", ""))
    return base_font[1:7] if len(base_font) > 7 and base_font[7] == "+" else ""


def _font_retag(*, font, taken) -> None:
    """Give a copied font subset a tag (the "ABCDEF+" of its name) that no other font of the page has.

    WeasyPrint derives the tag from the font file, so the frame and the layer name their two
    different subsets of the same font alike; a reader that takes them for one font would
    miss glyphs (ISO 32000-1, 9.6.4: distinct subsets have distinct tags).
    """
    tag = _font_tag(font=font)
    if not tag:
        return
    others = {_font_tag(font=value) for value in taken.values() if value.objgen != font.objgen}
    counter = 0
    new_tag = tag
    while new_tag in others or new_tag == tag:
        digest = hashlib.sha256(f"{tag}:{counter}".encode()).digest()
        new_tag = "".join(chr(ord("A") + byte % 26) for byte in digest[:6])
        counter += 1
    renamed = Name("/" + new_tag + str(font.BaseFont)[7:])
    font.BaseFont = renamed
    for descendant in font.get("/DescendantFonts", []):
        descendant.BaseFont = renamed
        if "/FontDescriptor" in descendant:
            descendant.FontDescriptor.FontName = renamed


def _stamp_content(
    *, frame_pdf, frame_page, layer_pdf, layer_page, page_number: int, offset: int, resources_copied: dict
) -> None:
    """Frame content then layer content on the frame page, each in its own graphics state.

    `resources_copied` maps each layer resource already copied (pages may share their resource
    dictionaries, WeasyPrint's do) to its copy, so that it is copied once.
    """
    layer_resources = layer_page.obj.get("/Resources", Dictionary())
    instructions = []
    for operands, operator in pikepdf.parse_content_stream(layer_page):
        name = str(operator)
        operands = list(operands)
        if name in ("BDC", "DP") and isinstance(operands[1], Dictionary) and "/MCID" in operands[1]:
            properties = Dictionary(operands[1])
            properties.MCID = offset + int(properties.MCID)
            operands[1] = properties
        if name in OPERAND_RESOURCES:
            position, category = OPERAND_RESOURCES[name]
            operand = operands[position] if operands else None
            if isinstance(operand, Name) and operand in layer_resources.get(category, {}):
                operands[position] = Name("/" + LAYER_PREFIX + str(operand)[1:])
        instructions.append((operands, Operator(name)))
    layer_stream = pikepdf.Stream(frame_pdf, pikepdf.unparse_content_stream(instructions))

    if "/Resources" not in frame_page.obj:
        frame_page.obj.Resources = Dictionary()
    frame_resources = frame_page.obj.Resources
    source = layer_resources.objgen if layer_resources.is_indirect else ("page", page_number)
    for category, entries in layer_resources.items():
        if category == "/ProcSet":
            continue
        if category not in frame_resources:
            frame_resources[category] = Dictionary()
        target = frame_resources[category]
        for key, value in entries.items():
            new_key = "/" + LAYER_PREFIX + key[1:]
            copy = resources_copied.get((source, category, key))
            if copy is None:
                copy = _copy_foreign(target=frame_pdf, source=layer_pdf, value=value)
                resources_copied[(source, category, key)] = copy
                if category == "/Font":
                    _font_retag(font=copy, taken=frame_resources.Font)
            if new_key in target:
                # Frame pages may share their resources: there already if another page put it there.
                if target[new_key].objgen != copy.objgen:
                    raise StampError(f"resource {new_key} is in both the frame and the layer")
                continue
            target[new_key] = copy

    contents = frame_page.obj.Contents
    frame_streams = list(contents) if isinstance(contents, Array) else [contents]
    frame_page.obj.Contents = Array(
        [
            pikepdf.Stream(frame_pdf, b"q\n"),
            *frame_streams,
            pikepdf.Stream(frame_pdf, b"\nQ\nq\n"),
            layer_stream,
            pikepdf.Stream(frame_pdf, b"\nQ\n"),
        ]
    )
