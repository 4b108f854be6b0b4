"""Words of the styled title families: marketing words, variant phrases, seller notes, short forms.

Six entries per row in ``LOCALES`` order (UK, DE, JP, ES, FR, IT), index-aligned across locales, so a
product imported into another locale carries the same words translated. Why: real titles are written
by many sellers, with marketing words and phrases that differ between variants of one product.
"""

from __future__ import annotations

from .vocab import Six

MARKETING: tuple[Six, ...] = (
    ("Premium", "Premium", "プレミアム", "Premium", "Premium", "Premium"),
    ("New", "Neu", "新型", "Nuevo", "Nouveau", "Nuovo"),
    ("Upgraded", "Verbessert", "改良版", "Mejorado", "Amélioré", "Migliorato"),
    ("2024", "2024", "2024年モデル", "2024", "2024", "2024"),
    ("Professional", "Profi", "プロ仕様", "Profesional", "Professionnel", "Professionale"),
    ("Original", "Original", "正規品", "Original", "Original", "Originale"),
    ("Heavy Duty", "Robust", "頑丈", "Resistente", "Robuste", "Resistente"),
    ("Ultra Slim", "Ultraflach", "超薄型", "Ultrafino", "Ultra-fin", "Ultrasottile"),
    ("Eco-Friendly", "Umweltfreundlich", "エコ", "Ecológico", "Écologique", "Ecologico"),
    ("Best Seller", "Bestseller", "大人気", "Más vendido", "Meilleure vente", "Più venduto"),
    ("Genuine", "Echt", "純正", "Auténtico", "Authentique", "Autentico"),
    ("Deluxe", "Deluxe", "高級", "De lujo", "De luxe", "Deluxe"),
    ("Compact", "Kompakt", "コンパクト", "Compacto", "Compact", "Compatto"),
    ("High Quality", "Hochwertig", "高品質", "Alta calidad", "Haute qualité", "Alta qualità"),
    ("Lightweight", "Leicht", "軽量", "Ligero", "Léger", "Leggero"),
    ("Durable", "Langlebig", "耐久性", "Duradero", "Durable", "Durevole"),
)

VARIANT_PHRASES: tuple[Six, ...] = (
    ("with Stand", "mit Ständer", "スタンド付き", "con soporte", "avec support", "con supporto"),
    ("Fast Charging", "Schnellladen", "急速充電", "carga rápida", "charge rapide", "ricarica rapida"),
    ("2023 Version", "Version 2023", "2023年版", "versión 2023", "version 2023", "versione 2023"),
    ("Extra Soft", "Extra weich", "極柔らか", "extra suave", "extra doux", "extra morbido"),
    ("Anti-Slip", "Rutschfest", "滑り止め", "antideslizante", "antidérapant", "antiscivolo"),
    ("Waterproof", "Wasserdicht", "防水", "impermeable", "étanche", "impermeabile"),
    ("with Gift Box", "mit Geschenkbox", "ギフトボックス付き", "con caja de regalo", "avec coffret cadeau",
     "con confezione regalo"),
    ("Travel Size", "Reisegröße", "旅行用", "tamaño de viaje", "format voyage", "formato viaggio"),
    ("Quick Dry", "Schnelltrocknend", "速乾", "secado rápido", "séchage rapide", "asciugatura rapida"),
    ("Non-Toxic", "Ungiftig", "無毒", "no tóxico", "non toxique", "atossico"),
    ("with Carry Bag", "mit Tragetasche", "収納袋付き", "con bolsa", "avec sac", "con borsa"),
    ("Refill", "Nachfüllpack", "詰め替え", "recambio", "recharge", "ricarica"),
    ("Limited Edition", "Limitierte Edition", "限定版", "edición limitada", "édition limitée", "edizione limitata"),
    ("Foldable", "Faltbar", "折りたたみ", "plegable", "pliable", "pieghevole"),
    ("Reinforced", "Verstärkt", "補強", "reforzado", "renforcé", "rinforzato"),
    ("Matte Finish", "Matt", "マット仕上げ", "acabado mate", "finition mate", "finitura opaca"),
    ("Glossy", "Glänzend", "光沢", "brillante", "brillant", "lucido"),
    ("Family Size", "Familiengröße", "ファミリーサイズ", "tamaño familiar", "format familial", "formato famiglia"),
    ("for Kids", "für Kinder", "子供用", "para niños", "pour enfants", "per bambini"),
    ("for Men", "für Herren", "メンズ", "para hombre", "pour homme", "da uomo"),
    ("for Women", "für Damen", "レディース", "para mujer", "pour femme", "da donna"),
    ("Unscented", "Parfümfrei", "無香料", "sin perfume", "sans parfum", "senza profumo"),
)

SELLER_NOTES: tuple[Six, ...] = (
    ("- Official Store", "- Offizieller Shop", "【公式】", "- Tienda oficial", "- Boutique officielle",
     "- Negozio ufficiale"),
    ("| Free Delivery", "| Kostenloser Versand", "｜送料無料", "| Envío gratis", "| Livraison gratuite",
     "| Spedizione gratuita"),
    ("(UK Version)", "(DE Version)", "(国内正規品)", "(Versión ES)", "(Version FR)", "(Versione IT)"),
    ("- Gift Idea", "- Geschenkidee", "【ギフト】", "- Idea regalo", "- Idée cadeau", "- Idea regalo"),
    ("[2 Year Warranty]", "[2 Jahre Garantie]", "[2年保証]", "[Garantía 2 años]", "[Garantie 2 ans]",
     "[Garanzia 2 anni]"),
)

PACK_SHORT: Six = ("{} pcs", "{} Stk.", "{}個", "{} uds", "{} pcs", "{} pz")
"""Short pack forms of lines written in abbreviations."""

PHRASE_CATEGORIES: dict[str, str] = {
    "with Stand": "electronics kitchen office",
    "Fast Charging": "electronics",
    "2023 Version": "*",
    "Extra Soft": "home clothing pets beauty toys",
    "Anti-Slip": "home sports kitchen electronics",
    "Waterproof": "electronics sports clothing office",
    "with Gift Box": "*",
    "Travel Size": "beauty kitchen cleaning home",
    "Quick Dry": "home sports clothing",
    "Non-Toxic": "toys pets cleaning kitchen",
    "with Carry Bag": "sports electronics toys home",
    "Refill": "cleaning beauty office",
    "Limited Edition": "*",
    "Foldable": "home sports kitchen",
    "Reinforced": "electronics home pets",
    "Matte Finish": "electronics kitchen office",
    "Glossy": "electronics office beauty",
    "Family Size": "cleaning kitchen home",
    "for Kids": "toys clothing sports kitchen",
    "for Men": "clothing beauty sports",
    "for Women": "clothing beauty sports",
    "Unscented": "beauty cleaning pets",
}
"""Categories (``vocab.CATEGORIES``) each variant phrase fits, by its UK form; "*" fits every category."""
