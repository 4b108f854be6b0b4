"""Translation tables for the synthetic Amazon-M2 generator (:mod:`recformer_m2.synth`).

Every per-locale tuple here has six entries in ``LOCALES`` order: UK, DE, JP, ES, FR, IT. The
tables are plain immutable data; the generator combines them into titles, attributes and
descriptions, so that the same latent product reads naturally in each locale's language while
brands, series names and model codes stay the same string everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

from ..constants import LOCALES

assert LOCALES == ("UK", "DE", "JP", "ES", "FR", "IT"), "tables below are in this locale order"

Six = tuple[str, str, str, str, str, str]

_COMMA_DECIMAL = (False, True, False, True, True, True)
"""Locales that write 1,8 rather than 1.8."""


def _measures(values: tuple[float, ...], units: Six, spaced: tuple[bool, ...]) -> tuple[Six, ...]:
    """Localised measurements ("1,8 m", "1.8m", ...) for each value; why: decimal commas and spacing differ."""
    rows = []
    for v in values:
        dot = f"{v:g}"
        row = []
        for loc in range(6):
            num = dot.replace(".", ",") if _COMMA_DECIMAL[loc] else dot
            row.append(f"{num} {units[loc]}" if spaced[loc] else f"{num}{units[loc]}")
        rows.append(tuple(row))
    return tuple(rows)  # type: ignore[return-value]


def _same(values: tuple[str, ...]) -> tuple[Six, ...]:
    """Values written identically in every locale (S/M/L, A4, 65W)."""
    return tuple((v,) * 6 for v in values)  # type: ignore[misc]


_SPACED = (True, True, False, True, True, True)
_TIGHT = (False,) * 6


class SizeType(NamedTuple):
    """A size/capacity dimension: localised values, and how a value reads inside a title."""

    values: tuple[Six, ...]
    title_fmt: Six = ("{}",) * 6  # type: ignore[assignment]


SIZE_TYPES: dict[str, SizeType] = {
    "length": SizeType(_measures((0.5, 1, 1.8, 2, 3), ("m",) * 6, _SPACED)),  # type: ignore[arg-type]
    "watt": SizeType(_same(("20W", "30W", "45W", "65W", "100W"))),
    "mah": SizeType(_same(("5000mAh", "10000mAh", "20000mAh", "26800mAh"))),
    "gb": SizeType(_measures((32, 64, 128, 256, 512), ("GB",) * 6, _SPACED)),  # type: ignore[arg-type]
    "device": SizeType(
        _same(("iPhone 13", "iPhone 14", "iPhone 14 Pro", "iPhone 15", "Galaxy S23", "Galaxy A54",
               "Pixel 7", "Redmi Note 12")),
        ("for {}", "für {}", "{}用", "para {}", "pour {}", "per {}"),
    ),
    "bed": SizeType((
        ("Single", "90x200 cm", "シングル", "90x190 cm", "90x190 cm", "Singolo"),
        ("Small Double", "120x200 cm", "セミダブル", "120x190 cm", "120x190 cm", "Piazza e mezza"),
        ("Double", "140x200 cm", "ダブル", "135x190 cm", "140x190 cm", "Matrimoniale"),
        ("King", "160x200 cm", "クイーン", "150x200 cm", "160x200 cm", "Matrimoniale grande"),
        ("Super King", "180x200 cm", "キング", "180x200 cm", "180x200 cm", "King size"),
    )),
    "pillow": SizeType(_same(("40x40 cm", "40x80 cm", "50x70 cm", "80x80 cm"))),
    "towel": SizeType(_same(("30x50 cm", "50x100 cm", "70x140 cm", "100x150 cm"))),
    "curtain": SizeType(_same(("135x175 cm", "135x245 cm", "140x260 cm"))),
    "litre": SizeType(_measures((10, 20, 30, 45, 60), ("L",) * 6, _SPACED)),  # type: ignore[arg-type]
    "kettle": SizeType(_measures((1, 1.5, 1.7), ("L",) * 6, _SPACED)),  # type: ignore[arg-type]
    "ml": SizeType(_measures((250, 400, 500, 750, 1000), ("ml",) * 6, _SPACED)),  # type: ignore[arg-type]
    "cm": SizeType(_measures((16, 20, 24, 28, 32), ("cm",) * 6, _SPACED)),  # type: ignore[arg-type]
    "paper": SizeType(_same(("A6", "A5", "A4", "A3"))),
    "pieces": SizeType(_measures(
        (100, 250, 500, 1000, 1500),
        ("Pieces", "Teile", "ピース", "piezas", "pièces", "pezzi"), _SPACED)),  # type: ignore[arg-type]
    "mm": SizeType(_measures((4, 6, 8, 10), ("mm",) * 6, _SPACED)),  # type: ignore[arg-type]
    "kg": SizeType(_measures((2, 5, 10, 15, 20), ("kg",) * 6, _SPACED)),  # type: ignore[arg-type]
    "clothing": SizeType(_same(("XS", "S", "M", "L", "XL", "XXL"))),
    "sock": SizeType(_same(("35-38", "39-42", "43-46"))),
    "volume": SizeType(
        tuple((str(v),) * 6 for v in range(1, 13)),  # type: ignore[misc]
        ("Book {}", "Band {}", "第{}巻", "Libro {}", "Tome {}", "Volume {}"),
    ),
}
"""Size dimensions; a line's variants use a contiguous run of one type's values."""


COLORS: tuple[Six, ...] = (
    ("Black", "Schwarz", "ブラック", "Negro", "Noir", "Nero"),
    ("White", "Weiß", "ホワイト", "Blanco", "Blanc", "Bianco"),
    ("Grey", "Grau", "グレー", "Gris", "Gris", "Grigio"),
    ("Blue", "Blau", "ブルー", "Azul", "Bleu", "Blu"),
    ("Red", "Rot", "レッド", "Rojo", "Rouge", "Rosso"),
    ("Green", "Grün", "グリーン", "Verde", "Vert", "Verde"),
    ("Pink", "Rosa", "ピンク", "Rosa", "Rose", "Rosa"),
    ("Silver", "Silber", "シルバー", "Plateado", "Argent", "Argento"),
    ("Gold", "Gold", "ゴールド", "Dorado", "Or", "Oro"),
    ("Navy", "Marineblau", "ネイビー", "Azul marino", "Bleu marine", "Blu navy"),
    ("Beige", "Beige", "ベージュ", "Beige", "Beige", "Beige"),
    ("Purple", "Lila", "パープル", "Morado", "Violet", "Viola"),
    ("Yellow", "Gelb", "イエロー", "Amarillo", "Jaune", "Giallo"),
    ("Rose Gold", "Roségold", "ローズゴールド", "Oro rosa", "Or rose", "Oro rosa"),
    ("Transparent", "Transparent", "クリア", "Transparente", "Transparent", "Trasparente"),
    ("Multicolour", "Mehrfarbig", "マルチカラー", "Multicolor", "Multicolore", "Multicolore"),
)
COLOR_WEIGHTS: tuple[float, ...] = (20, 14, 8, 8, 6, 5, 5, 5, 3, 5, 4, 4, 3, 3, 3, 4)
COLOR_CODES: tuple[str, ...] = ("BK", "WH", "GY", "BL", "RD", "GN", "PK", "SV", "GD", "NV", "BG", "PL", "YL",
                                "RG", "CL", "MC")

MATERIALS: dict[str, Six] = {
    "plastic": ("Plastic", "Kunststoff", "プラスチック", "Plástico", "Plastique", "Plastica"),
    "nylon": ("Nylon", "Nylon", "ナイロン", "Nailon", "Nylon", "Nylon"),
    "silicone": ("Silicone", "Silikon", "シリコン", "Silicona", "Silicone", "Silicone"),
    "leather": ("Leather", "Leder", "本革", "Cuero", "Cuir", "Pelle"),
    "pu": ("PU Leather", "Kunstleder", "合成皮革", "Piel sintética", "Similicuir", "Similpelle"),
    "cotton": ("Cotton", "Baumwolle", "綿", "Algodón", "Coton", "Cotone"),
    "polyester": ("Polyester", "Polyester", "ポリエステル", "Poliéster", "Polyester", "Poliestere"),
    "microfibre": ("Microfibre", "Mikrofaser", "マイクロファイバー", "Microfibra", "Microfibre", "Microfibra"),
    "steel": ("Stainless Steel", "Edelstahl", "ステンレス鋼", "Acero inoxidable", "Acier inoxydable",
              "Acciaio inossidabile"),
    "aluminium": ("Aluminium", "Aluminium", "アルミニウム", "Aluminio", "Aluminium", "Alluminio"),
    "glass": ("Glass", "Glas", "ガラス", "Vidrio", "Verre", "Vetro"),
    "wood": ("Wood", "Holz", "木材", "Madera", "Bois", "Legno"),
    "ceramic": ("Ceramic", "Keramik", "陶器", "Cerámica", "Céramique", "Ceramica"),
    "bamboo": ("Bamboo", "Bambus", "竹", "Bambú", "Bambou", "Bambù"),
    "tpu": ("TPU", "TPU", "TPU", "TPU", "TPU", "TPU"),
    "paper": ("Paper", "Papier", "紙", "Papel", "Papier", "Carta"),
    "rubber": ("Rubber", "Gummi", "ゴム", "Caucho", "Caoutchouc", "Gomma"),
    "plush": ("Plush", "Plüsch", "ぬいぐるみ生地", "Felpa", "Peluche", "Peluche"),
}

CATEGORIES: tuple[str, ...] = ("electronics", "home", "kitchen", "office", "beauty", "toys", "sports",
                               "clothing", "pets", "cleaning", "books")


class Kind(NamedTuple):
    """A product kind: its name in each locale and what its variants vary in."""

    key: str
    category: str
    names: Six
    size_type: str          # key of SIZE_TYPES, "" when variants have no size
    has_color: bool
    materials: tuple[str, ...]
    price: float            # typical single-item price in EUR
    weight: float           # share of product lines
    packs: tuple[int, ...]  # pack counts a line may come in (first is the usual one)


KINDS: tuple[Kind, ...] = (
    # electronics
    Kind("usb_c_cable", "electronics",
         ("USB-C Cable", "USB-C Ladekabel", "USB Type-C ケーブル", "Cable USB-C", "Câble USB-C", "Cavo USB-C"),
         "length", True, ("nylon", "plastic"), 11.0, 3.0, (1, 2, 3, 5)),
    Kind("lightning_cable", "electronics",
         ("Lightning Cable", "Lightning Kabel", "ライトニングケーブル", "Cable Lightning", "Câble Lightning",
          "Cavo Lightning"), "length", True, ("nylon", "plastic"), 12.0, 2.0, (1, 2, 3)),
    Kind("hdmi_cable", "electronics",
         ("HDMI Cable 4K", "HDMI Kabel 4K", "HDMIケーブル 4K", "Cable HDMI 4K", "Câble HDMI 4K", "Cavo HDMI 4K"),
         "length", False, ("nylon", "plastic"), 10.0, 1.5, (1, 2)),
    Kind("usb_charger", "electronics",
         ("USB-C Charger", "USB-C Ladegerät", "USB-C 充電器", "Cargador USB-C", "Chargeur USB-C",
          "Caricatore USB-C"), "watt", True, ("plastic",), 22.0, 2.5, (1, 2)),
    Kind("wireless_charger", "electronics",
         ("Wireless Charger", "Kabelloses Ladegerät", "ワイヤレス充電器", "Cargador inalámbrico",
          "Chargeur sans fil", "Caricatore wireless"), "watt", True, ("plastic", "aluminium"), 25.0, 1.2, (1, 2)),
    Kind("power_bank", "electronics",
         ("Power Bank", "Powerbank", "モバイルバッテリー", "Batería externa", "Batterie externe",
          "Batteria esterna"), "mah", True, ("plastic", "aluminium"), 30.0, 2.0, (1, 2)),
    Kind("phone_case", "electronics",
         ("Phone Case", "Handyhülle", "スマホケース", "Funda", "Coque", "Custodia"),
         "device", True, ("silicone", "tpu", "pu", "leather"), 13.0, 3.5, (1,)),
    Kind("screen_protector", "electronics",
         ("Screen Protector", "Panzerglas Schutzfolie", "ガラスフィルム", "Protector de pantalla",
          "Verre trempé", "Vetro temperato"), "device", False, ("glass",), 9.0, 2.0, (1, 2, 3)),
    Kind("headphones", "electronics",
         ("Over-Ear Headphones", "Over-Ear Kopfhörer", "ヘッドホン", "Auriculares de diadema", "Casque audio",
          "Cuffie over-ear"), "", True, ("plastic", "pu"), 60.0, 1.2, (1,)),
    Kind("earbuds", "electronics",
         ("Wireless Earbuds", "Bluetooth In-Ear Kopfhörer", "ワイヤレスイヤホン", "Auriculares inalámbricos",
          "Écouteurs sans fil", "Auricolari wireless"), "", True, ("plastic",), 40.0, 1.8, (1,)),
    Kind("speaker", "electronics",
         ("Bluetooth Speaker", "Bluetooth Lautsprecher", "Bluetoothスピーカー", "Altavoz Bluetooth",
          "Enceinte Bluetooth", "Altoparlante Bluetooth"), "watt", True, ("plastic", "rubber"), 45.0, 1.0, (1,)),
    Kind("mouse", "electronics",
         ("Wireless Mouse", "Kabellose Maus", "ワイヤレスマウス", "Ratón inalámbrico", "Souris sans fil",
          "Mouse wireless"), "", True, ("plastic",), 20.0, 1.3, (1, 2)),
    Kind("keyboard", "electronics",
         ("Wireless Keyboard", "Kabellose Tastatur", "ワイヤレスキーボード", "Teclado inalámbrico",
          "Clavier sans fil", "Tastiera wireless"), "", True, ("plastic", "aluminium"), 35.0, 1.0, (1,)),
    Kind("mouse_pad", "electronics",
         ("Mouse Pad", "Mauspad", "マウスパッド", "Alfombrilla de ratón", "Tapis de souris",
          "Tappetino per mouse"), "mm", True, ("rubber", "polyester"), 10.0, 0.8, (1, 2)),
    Kind("usb_stick", "electronics",
         ("USB Flash Drive", "USB-Stick", "USBメモリ", "Memoria USB", "Clé USB", "Chiavetta USB"),
         "gb", True, ("plastic", "aluminium"), 12.0, 1.2, (1, 2, 3)),
    Kind("sd_card", "electronics",
         ("microSD Card", "microSD Speicherkarte", "microSDカード", "Tarjeta microSD", "Carte microSD",
          "Scheda microSD"), "gb", False, (), 15.0, 1.2, (1, 2)),
    Kind("batteries", "electronics",
         ("AA Batteries", "AA Batterien", "単3形 アルカリ乾電池", "Pilas AA", "Piles AA", "Batterie AA"),
         "", False, (), 7.0, 1.0, (4, 8, 12, 20, 24)),
    Kind("led_bulb", "electronics",
         ("LED Bulb E27", "LED Lampe E27", "LED電球 E26", "Bombilla LED E27", "Ampoule LED E27",
          "Lampadina LED E27"), "watt", False, ("glass", "plastic"), 6.0, 1.0, (1, 2, 4, 6)),
    Kind("flashlight", "electronics",
         ("LED Torch", "LED Taschenlampe", "LED懐中電灯", "Linterna LED", "Lampe torche LED", "Torcia LED"),
         "", True, ("aluminium", "plastic"), 18.0, 0.7, (1, 2)),
    # home
    Kind("fitted_sheet", "home",
         ("Fitted Sheet", "Spannbettlaken", "ボックスシーツ", "Sábana bajera ajustable", "Drap-housse",
          "Lenzuolo con angoli"), "bed", True, ("cotton", "microfibre", "polyester"), 22.0, 1.5, (1, 2)),
    Kind("duvet", "home",
         ("Duvet", "Bettdecke", "掛け布団", "Edredón nórdico", "Couette", "Piumino"),
         "bed", False, ("microfibre", "cotton"), 45.0, 1.0, (1,)),
    Kind("pillow", "home",
         ("Pillow", "Kopfkissen", "枕", "Almohada", "Oreiller", "Cuscino"),
         "pillow", True, ("microfibre", "cotton"), 20.0, 1.3, (1, 2, 4)),
    Kind("mattress_topper", "home",
         ("Mattress Topper", "Matratzenauflage", "敷きパッド", "Topper de colchón", "Surmatelas",
          "Topper per materasso"), "bed", False, ("microfibre", "polyester"), 40.0, 0.9, (1,)),
    Kind("bath_towel", "home",
         ("Bath Towel", "Badetuch", "バスタオル", "Toalla de baño", "Serviette de bain", "Telo bagno"),
         "towel", True, ("cotton", "microfibre", "bamboo"), 15.0, 1.3, (1, 2, 4, 6)),
    Kind("storage_box", "home",
         ("Storage Box", "Aufbewahrungsbox", "収納ボックス", "Caja de almacenaje", "Boîte de rangement",
          "Scatola portaoggetti"), "litre", True, ("plastic", "polyester"), 18.0, 1.2, (1, 2, 3, 6)),
    Kind("curtain", "home",
         ("Blackout Curtains", "Verdunkelungsvorhang", "遮光カーテン", "Cortinas opacas", "Rideaux occultants",
          "Tende oscuranti"), "curtain", True, ("polyester",), 28.0, 1.0, (1, 2)),
    # kitchen
    Kind("water_bottle", "kitchen",
         ("Water Bottle", "Trinkflasche", "水筒", "Botella de agua", "Gourde", "Borraccia"),
         "ml", True, ("steel", "plastic", "glass"), 16.0, 1.6, (1, 2)),
    Kind("coffee_mug", "kitchen",
         ("Coffee Mug", "Kaffeebecher", "マグカップ", "Taza de café", "Mug à café", "Tazza da caffè"),
         "ml", True, ("ceramic", "glass", "steel"), 11.0, 1.2, (1, 2, 4, 6)),
    Kind("frying_pan", "kitchen",
         ("Non-Stick Frying Pan", "Antihaft Bratpfanne", "フライパン", "Sartén antiadherente",
          "Poêle antiadhésive", "Padella antiaderente"), "cm", True, ("aluminium", "steel"), 30.0, 1.2, (1, 2)),
    Kind("kitchen_knife", "kitchen",
         ("Kitchen Knife", "Küchenmesser", "包丁", "Cuchillo de cocina", "Couteau de cuisine",
          "Coltello da cucina"), "cm", False, ("steel",), 35.0, 0.9, (1, 3)),
    Kind("food_container", "kitchen",
         ("Food Storage Containers", "Frischhaltedosen", "保存容器", "Recipientes para alimentos",
          "Boîtes de conservation", "Contenitori per alimenti"), "ml", False, ("glass", "plastic"), 20.0, 1.0,
         (3, 5, 10, 24)),
    Kind("kettle", "kitchen",
         ("Electric Kettle", "Wasserkocher", "電気ケトル", "Hervidor de agua eléctrico", "Bouilloire électrique",
          "Bollitore elettrico"), "kettle", True, ("steel", "glass", "plastic"), 35.0, 0.8, (1,)),
    Kind("chopping_board", "kitchen",
         ("Chopping Board", "Schneidebrett", "まな板", "Tabla de cortar", "Planche à découper", "Tagliere"),
         "cm", False, ("wood", "bamboo", "plastic"), 15.0, 0.7, (1, 2, 3)),
    # office
    Kind("notebook", "office",
         ("Notebook", "Notizbuch", "ノート", "Cuaderno", "Carnet", "Quaderno"),
         "paper", True, ("paper",), 8.0, 1.2, (1, 3, 5, 10)),
    Kind("ballpoint_pen", "office",
         ("Ballpoint Pens", "Kugelschreiber", "ボールペン", "Bolígrafos", "Stylos à bille", "Penne a sfera"),
         "", True, ("plastic",), 6.0, 1.0, (5, 10, 20, 50)),
    Kind("document_folder", "office",
         ("Document Folder", "Dokumentenmappe", "クリアファイル", "Carpeta de documentos", "Chemise à rabats",
          "Cartellina"), "paper", True, ("plastic", "paper"), 8.0, 0.8, (5, 10, 25)),
    Kind("stapler", "office",
         ("Stapler", "Heftgerät", "ホッチキス", "Grapadora", "Agrafeuse", "Cucitrice"),
         "", True, ("steel", "plastic"), 12.0, 0.5, (1, 2)),
    Kind("printer_paper", "office",
         ("Printer Paper", "Druckerpapier", "コピー用紙", "Papel de impresora", "Papier d'impression",
          "Carta per stampante"), "paper", False, (), 10.0, 0.6, (500, 1000, 2500)),
    # beauty
    Kind("shampoo", "beauty",
         ("Shampoo", "Shampoo", "シャンプー", "Champú", "Shampooing", "Shampoo"),
         "ml", False, (), 7.0, 1.2, (1, 2, 3, 6)),
    Kind("conditioner", "beauty",
         ("Conditioner", "Spülung", "コンディショナー", "Acondicionador", "Après-shampooing", "Balsamo"),
         "ml", False, (), 7.0, 0.9, (1, 2, 3)),
    Kind("face_cream", "beauty",
         ("Face Cream", "Gesichtscreme", "フェイスクリーム", "Crema facial", "Crème visage", "Crema viso"),
         "ml", False, (), 18.0, 1.0, (1, 2)),
    Kind("toothbrush_heads", "beauty",
         ("Toothbrush Heads", "Aufsteckbürsten", "替えブラシ", "Cabezales de recambio", "Brossettes de rechange",
          "Testine di ricambio"), "", True, ("plastic",), 15.0, 0.8, (2, 4, 8, 12)),
    Kind("razor_blades", "beauty",
         ("Razor Blades", "Rasierklingen", "替刃", "Cuchillas de afeitar", "Lames de rasoir", "Lamette da barba"),
         "", False, ("steel",), 14.0, 0.6, (4, 8, 12, 16)),
    # toys
    Kind("building_blocks", "toys",
         ("Building Blocks Set", "Bausteine Set", "ブロック セット", "Juego de bloques de construcción",
          "Jeu de construction", "Set di mattoncini"), "pieces", False, ("plastic",), 25.0, 1.0, (1,)),
    Kind("jigsaw_puzzle", "toys",
         ("Jigsaw Puzzle", "Puzzle", "ジグソーパズル", "Rompecabezas", "Puzzle", "Puzzle"),
         "pieces", False, ("paper",), 15.0, 1.0, (1, 2)),
    Kind("plush_toy", "toys",
         ("Plush Toy", "Plüschtier", "ぬいぐるみ", "Peluche", "Peluche", "Peluche"),
         "cm", True, ("plush", "polyester"), 18.0, 0.9, (1,)),
    # sports
    Kind("yoga_mat", "sports",
         ("Yoga Mat", "Yogamatte", "ヨガマット", "Esterilla de yoga", "Tapis de yoga", "Tappetino yoga"),
         "mm", True, ("rubber", "polyester"), 22.0, 1.0, (1,)),
    Kind("dumbbells", "sports",
         ("Dumbbells", "Hanteln", "ダンベル", "Mancuernas", "Haltères", "Manubri"),
         "kg", True, ("steel", "rubber"), 30.0, 0.8, (1, 2)),
    Kind("resistance_bands", "sports",
         ("Resistance Bands", "Fitnessbänder", "トレーニングチューブ", "Bandas elásticas", "Bandes de résistance",
          "Bande elastiche"), "", True, ("rubber",), 14.0, 0.7, (1, 3, 5)),
    # clothing
    Kind("t_shirt", "clothing",
         ("T-Shirt", "T-Shirt", "Tシャツ", "Camiseta", "T-shirt", "Maglietta"),
         "clothing", True, ("cotton", "polyester"), 15.0, 1.4, (1, 2, 3)),
    Kind("socks", "clothing",
         ("Socks", "Socken", "靴下", "Calcetines", "Chaussettes", "Calzini"),
         "sock", True, ("cotton",), 12.0, 1.0, (3, 5, 6, 10)),
    Kind("hoodie", "clothing",
         ("Hoodie", "Kapuzenpullover", "パーカー", "Sudadera con capucha", "Sweat à capuche",
          "Felpa con cappuccio"), "clothing", True, ("cotton", "polyester"), 35.0, 1.0, (1,)),
    # pets
    Kind("cat_litter", "pets",
         ("Cat Litter", "Katzenstreu", "猫砂", "Arena para gatos", "Litière pour chat", "Lettiera per gatti"),
         "kg", False, (), 14.0, 0.6, (1, 2, 3)),
    Kind("cat_toy", "pets",
         ("Cat Toy", "Katzenspielzeug", "猫 おもちゃ", "Juguete para gatos", "Jouet pour chat", "Gioco per gatti"),
         "", True, ("plush", "rubber"), 8.0, 0.6, (1, 3, 5)),
    Kind("dog_toy", "pets",
         ("Dog Chew Toy", "Hundespielzeug Kauspielzeug", "犬 おもちゃ", "Juguete para perros",
          "Jouet pour chien", "Gioco per cani"), "clothing", True, ("rubber",), 10.0, 0.7, (1, 2)),
    # cleaning
    Kind("insect_spray", "cleaning",
         ("Insect Spray", "Insektenspray", "殺虫スプレー", "Insecticida en spray", "Spray insecticide",
          "Spray insetticida"), "ml", False, (), 7.0, 0.6, (1, 2, 3)),
    Kind("dish_soap", "cleaning",
         ("Washing-Up Liquid", "Spülmittel", "食器用洗剤", "Lavavajillas líquido", "Liquide vaisselle",
          "Detersivo per piatti"), "ml", False, (), 4.0, 0.7, (1, 2, 4, 8)),
    Kind("laundry_detergent", "cleaning",
         ("Laundry Detergent", "Waschmittel", "洗濯洗剤", "Detergente para ropa", "Lessive liquide",
          "Detersivo per bucato"), "kettle", False, (), 12.0, 0.8, (1, 2, 3)),
    # books
    Kind("book", "books",
         ("Book", "Buch", "本", "Libro", "Livre", "Libro"),
         "volume", False, (), 14.0, 3.0, (1,)),
)
"""Product kinds; a product line is one brand + series + kind."""

RELATED_KINDS: tuple[tuple[str, str], ...] = (
    ("usb_c_cable", "usb_charger"), ("usb_c_cable", "lightning_cable"), ("usb_charger", "power_bank"),
    ("usb_charger", "wireless_charger"), ("power_bank", "usb_c_cable"), ("lightning_cable", "usb_charger"),
    ("phone_case", "screen_protector"), ("phone_case", "wireless_charger"), ("screen_protector", "usb_c_cable"),
    ("hdmi_cable", "usb_c_cable"), ("hdmi_cable", "usb_stick"), ("headphones", "earbuds"),
    ("earbuds", "speaker"), ("headphones", "speaker"), ("earbuds", "usb_charger"), ("mouse", "keyboard"),
    ("mouse", "mouse_pad"), ("keyboard", "mouse_pad"), ("usb_stick", "sd_card"), ("batteries", "flashlight"),
    ("batteries", "mouse"), ("led_bulb", "flashlight"), ("led_bulb", "batteries"),
    ("fitted_sheet", "pillow"), ("fitted_sheet", "duvet"), ("duvet", "pillow"), ("mattress_topper", "fitted_sheet"),
    ("mattress_topper", "pillow"), ("bath_towel", "fitted_sheet"), ("curtain", "fitted_sheet"),
    ("storage_box", "food_container"), ("storage_box", "curtain"),
    ("water_bottle", "coffee_mug"), ("coffee_mug", "kettle"), ("frying_pan", "kitchen_knife"),
    ("kitchen_knife", "chopping_board"), ("frying_pan", "chopping_board"), ("food_container", "water_bottle"),
    ("kettle", "frying_pan"),
    ("notebook", "ballpoint_pen"), ("notebook", "document_folder"), ("document_folder", "stapler"),
    ("printer_paper", "document_folder"), ("printer_paper", "stapler"), ("ballpoint_pen", "stapler"),
    ("shampoo", "conditioner"), ("conditioner", "face_cream"), ("toothbrush_heads", "razor_blades"),
    ("face_cream", "razor_blades"), ("shampoo", "bath_towel"),
    ("building_blocks", "jigsaw_puzzle"), ("jigsaw_puzzle", "plush_toy"), ("plush_toy", "building_blocks"),
    ("yoga_mat", "resistance_bands"), ("dumbbells", "resistance_bands"), ("yoga_mat", "dumbbells"),
    ("yoga_mat", "water_bottle"), ("socks", "t_shirt"), ("t_shirt", "hoodie"), ("socks", "hoodie"),
    ("cat_litter", "cat_toy"), ("cat_toy", "dog_toy"),
    ("insect_spray", "dish_soap"), ("dish_soap", "laundry_detergent"), ("laundry_detergent", "bath_towel"),
    ("book", "notebook"), ("book", "jigsaw_puzzle"),
)
"""Kind-relatedness graph (undirected): cable -> charger -> power bank, sheet -> pillow, ..."""

PACK_FMT: Six = ("Pack of {}", "{}er Pack", "{}個セット", "Pack de {}", "Lot de {}", "Confezione da {}")
BOOK_FORMATS: tuple[Six, ...] = (
    ("Paperback", "Taschenbuch", "文庫", "Tapa blanda", "Broché", "Copertina flessibile"),
    ("Hardcover", "Gebundene Ausgabe", "単行本", "Tapa dura", "Relié", "Copertina rigida"),
)

SERIES_PARTS: tuple[str, ...] = (
    "Power", "Line", "Ultra", "Pro", "Max", "Air", "Flex", "Neo", "Core", "Prime", "Eco", "Smart", "Lite",
    "Nova", "Zen", "Edge", "Pure", "Swift", "Titan", "Aero", "Volt", "Sonic", "Fusion", "Wave", "Orbit",
    "Vita", "Terra", "Luna", "Sky", "Bolt", "Comfort", "Soft", "Classic", "Active", "Fresh", "Urban",
    "Studio", "Nano", "Hyper", "Cloud",
)
SERIES_SUFFIXES: tuple[str, ...] = ("", " II", " III", " 2", " 3", " X", " S", " Mini", " Plus", " Go")

BRAND_SYLLABLE_CONSONANTS: str = "bdfgklmnprstvz"
BRAND_SYLLABLE_VOWELS: str = "aeiou"
BRAND_ENDINGS: tuple[str, ...] = ("", "x", "n", "r", "tek", "ra", "io", "lux", "on", "ia")
BRAND_SUFFIXES: dict[str, tuple[str, ...]] = {
    "electronics": ("", "", "", " Tech", " Digital"),
    "home": ("", "", " Home", " Living"),
    "kitchen": ("", "", " Kitchen", " Cook"),
    "office": ("", "", " Office"),
    "beauty": ("", "", " Care", " Beauty"),
    "toys": ("", "", " Kids", " Toys"),
    "sports": ("", "", " Sports", " Fit"),
    "clothing": ("", "", " Wear"),
    "pets": ("", "", " Pets"),
    "cleaning": ("", "", " Clean"),
    "books": ("", " Verlag", " Press", " Books", " Publishing"),
}
KATAKANA_SYLLABLES: tuple[str, ...] = (
    "ア", "イ", "エ", "オ", "カ", "キ", "ク", "コ", "サ", "シ", "ス", "タ", "テ", "ト", "ナ", "ニ", "ノ", "ハ",
    "フ", "ホ", "マ", "ミ", "モ", "ヤ", "ラ", "リ", "ル", "レ", "ロ", "ワ", "ン", "ー", "ッ", "ダ", "ゴ", "ビ",
)
"""Syllables of Japan-only brand names (e.g. 'サンワテック'), shown as-is in every locale."""

PLACE_SYLLABLES: tuple[tuple[str, str], ...] = (
    ("ka", "カ"), ("ri", "リ"), ("na", "ナ"), ("lo", "ロ"), ("mi", "ミ"), ("to", "ト"), ("sa", "サ"),
    ("ra", "ラ"), ("no", "ノ"), ("ve", "ヴェ"), ("da", "ダ"), ("ne", "ネ"), ("ru", "ル"), ("mo", "モ"),
    ("ta", "タ"), ("ko", "コ"), ("se", "セ"), ("ha", "ハ"), ("ni", "ニ"), ("ma", "マ"), ("el", "エル"),
    ("an", "アン"), ("or", "オル"), ("li", "リ"),
)
"""(Latin, katakana) syllables of fantasy place names in book titles, so JP titles transliterate."""

BOOK_NOUNS: tuple[Six, ...] = (
    ("The Shadows", "Die Schatten", "影", "Las sombras", "Les Ombres", "Le ombre"),
    ("The Secret", "Das Geheimnis", "秘密", "El secreto", "Le Secret", "Il segreto"),
    ("The Heart", "Das Herz", "心", "El corazón", "Le Cœur", "Il cuore"),
    ("The Daughter", "Die Tochter", "娘", "La hija", "La Fille", "La figlia"),
    ("The Legend", "Die Legende", "伝説", "La leyenda", "La Légende", "La leggenda"),
    ("The King", "Der König", "王", "El rey", "Le Roi", "Il re"),
    ("The Storm", "Der Sturm", "嵐", "La tormenta", "La Tempête", "La tempesta"),
    ("The Garden", "Der Garten", "庭", "El jardín", "Le Jardin", "Il giardino"),
    ("The Queen", "Die Königin", "女王", "La reina", "La Reine", "La regina"),
    ("The Light", "Das Licht", "光", "La luz", "La Lumière", "La luce"),
    ("The Night", "Die Nacht", "夜", "La noche", "La Nuit", "La notte"),
    ("The Song", "Das Lied", "歌", "La canción", "La Chanson", "La canzone"),
    ("The Fire", "Das Feuer", "炎", "El fuego", "Le Feu", "Il fuoco"),
    ("The Rose", "Die Rose", "薔薇", "La rosa", "La Rose", "La rosa"),
    ("The Wolves", "Die Wölfe", "狼たち", "Los lobos", "Les Loups", "I lupi"),
    ("The Silence", "Die Stille", "沈黙", "El silencio", "Le Silence", "Il silenzio"),
    ("The Memory", "Die Erinnerung", "記憶", "La memoria", "La Mémoire", "La memoria"),
    ("The Ghost", "Der Geist", "幽霊", "El fantasma", "Le Fantôme", "Il fantasma"),
    ("The Key", "Der Schlüssel", "鍵", "La llave", "La Clé", "La chiave"),
    ("The Stars", "Die Sterne", "星々", "Las estrellas", "Les Étoiles", "Le stelle"),
    ("The River", "Der Fluss", "川", "El río", "La Rivière", "Il fiume"),
    ("The Dream", "Der Traum", "夢", "El sueño", "Le Rêve", "Il sogno"),
    ("The Curse", "Der Fluch", "呪い", "La maldición", "La Malédiction", "La maledizione"),
    ("The Return", "Die Rückkehr", "帰還", "El regreso", "Le Retour", "Il ritorno"),
    ("The Crown", "Die Krone", "王冠", "La corona", "La Couronne", "La corona"),
    ("The Winter", "Der Winter", "冬", "El invierno", "L'Hiver", "L'inverno"),
)
BOOK_TITLE_FMT: Six = ("{noun} of {place}", "{noun} von {place}", "{place}の{noun}", "{noun} de {place}",
                       "{noun} de {place}", "{noun} di {place}")

AUTHOR_FIRST: tuple[tuple[str, ...], ...] = (
    ("Sarah", "James", "Emma", "Oliver", "Charlotte", "Harry", "Amelia", "George", "Olivia", "Jack", "Sophie",
     "Thomas", "Lucy", "William", "Grace", "Daniel", "Hannah", "Samuel", "Ella", "Henry"),
    ("Jonas", "Lena", "Felix", "Anna", "Lukas", "Marie", "Paul", "Sophie", "Maximilian", "Laura", "Leon", "Julia",
     "Elias", "Hannah", "Finn", "Clara", "Jakob", "Emilia", "Moritz", "Greta"),
    ("健", "翔太", "陽菜", "結衣", "大翔", "美咲", "蓮", "葵", "悠真", "さくら", "拓海", "真央", "颯太", "凛", "湊",
     "花子", "誠", "恵", "直樹", "由美"),
    ("Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Pablo", "Valeria", "Daniel", "Carmen", "Javier", "Elena",
     "Alejandro", "Paula", "Diego", "Laura", "Carlos", "Marta", "Sergio", "Irene", "Andrés"),
    ("Camille", "Louis", "Léa", "Gabriel", "Chloé", "Arthur", "Manon", "Jules", "Inès", "Hugo", "Juliette",
     "Lucas", "Zoé", "Raphaël", "Alice", "Nathan", "Clara", "Théo", "Margaux", "Antoine"),
    ("Giulia", "Francesco", "Sofia", "Alessandro", "Aurora", "Lorenzo", "Chiara", "Matteo", "Martina",
     "Leonardo", "Giorgia", "Andrea", "Alice", "Riccardo", "Elena", "Marco", "Sara", "Tommaso", "Anna", "Davide"),
)
AUTHOR_LAST: tuple[tuple[str, ...], ...] = (
    ("Mitchell", "Clarke", "Hughes", "Turner", "Walker", "Wright", "Cooper", "Bennett", "Hayes", "Fletcher",
     "Morgan", "Reed", "Barnes", "Palmer", "Shaw", "Ellis", "Harper", "Lloyd", "Webb", "Hunt"),
    ("Becker", "Schneider", "Fischer", "Weber", "Wagner", "Hoffmann", "Schäfer", "Koch", "Bauer", "Richter",
     "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger", "Hofmann", "Hartmann"),
    ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田", "佐々木",
     "山口", "松本", "井上", "木村", "林", "清水", "斎藤"),
    ("García", "Fernández", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Martín", "Jiménez", "Ruiz",
     "Hernández", "Díaz", "Moreno", "Álvarez", "Romero", "Navarro", "Torres", "Domínguez", "Vázquez", "Castro"),
    ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy", "Moreau", "Simon",
     "Laurent", "Lefebvre", "Michel", "Garcia", "David", "Bertrand", "Roux", "Vincent", "Fournier"),
    ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
     "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti"),
)
"""Author names by the locale a book line comes from (JP names are written family name first)."""

DESC_PHRASES: tuple[tuple[str, ...], ...] = (
    ("High-quality {kind} from {brand}", "Durable, lightweight and easy to clean",
     'Includes "Quick Start" guide', "Ideal for home, office and travel",
     "Satisfaction guaranteed: 30-day return policy", "Made of {material}",
     "Package contents: 1 x {kind}, 1 x user manual", "Compatible with most devices.\nCertified and safe.",
     'Rated "Excellent" by customers', "Our {kind} combines style, comfort and function"),
    ("Hochwertiges Produkt von {brand}: {kind}", "Robust, leicht und einfach zu reinigen",
     'Inklusive "Schnellstart" Anleitung', "Ideal für Zuhause, Büro und Reisen",
     "Zufriedenheitsgarantie: 30 Tage Rückgaberecht", "Material: {material}",
     "Lieferumfang: 1 x {kind}, 1 x Bedienungsanleitung",
     "Mit den meisten Geräten kompatibel.\nZertifiziert und sicher.",
     'Von Kunden mit "Sehr gut" bewertet', "{kind} – vereint Stil, Komfort und Funktion"),
    ("{brand}の高品質な{kind}", "丈夫で軽量、お手入れも簡単", "「クイックスタート」ガイド付き",
     "ご家庭、オフィス、旅行に最適", "安心の30日間返品保証", "素材：{material}",
     "セット内容：{kind} ×1、取扱説明書 ×1", "ほとんどのデバイスに対応。\n安全認証済み。",
     'お客様から"大変良い"と高評価', "スタイル、快適さ、機能性を兼ね備えた{kind}"),
    ("{kind} de alta calidad de {brand}", "Resistente, ligero y fácil de limpiar",
     'Incluye guía de "Inicio rápido"', "Ideal para casa, oficina y viajes",
     "Satisfacción garantizada: devolución en 30 días", "Material: {material}",
     "Contenido: 1 x {kind}, 1 x manual de usuario",
     "Compatible con la mayoría de dispositivos.\nCertificado y seguro.",
     'Valorado como "Excelente" por los clientes', "{kind}: combina estilo, comodidad y función"),
    ("{kind} de haute qualité par {brand}", "Robuste, léger et facile à nettoyer",
     'Guide "Démarrage rapide" inclus', "Idéal pour la maison, le bureau et les voyages",
     "Satisfait ou remboursé : retour sous 30 jours", "Matière : {material}",
     "Contenu : 1 x {kind}, 1 x mode d'emploi",
     "Compatible avec la plupart des appareils.\nCertifié et sûr.",
     'Noté "Excellent" par les clients', "{kind} : allie style, confort et fonction"),
    ("{kind} di alta qualità di {brand}", "Resistente, leggero e facile da pulire",
     'Guida "Avvio rapido" inclusa', "Ideale per casa, ufficio e viaggi",
     "Soddisfatti o rimborsati: reso entro 30 giorni", "Materiale: {material}",
     "Contenuto: 1 x {kind}, 1 x manuale d'uso",
     "Compatibile con la maggior parte dei dispositivi.\nCertificato e sicuro.",
     'Valutato "Eccellente" dai clienti', "{kind}: unisce stile, comfort e funzionalità"),
)
"""Description phrases (same index = same meaning); some hold commas, quotes or a newline on purpose."""
DESC_DEVICE_PHRASE = 7
"""Index of the "compatible with most devices" phrase, used for electronics only."""

BOOK_DESC_PHRASES: tuple[tuple[str, ...], ...] = (
    ("A gripping story by {author}", "The bestselling series continues", 'Hailed as "unputdownable", a must-read',
     "Book {volume} of the series"),
    ("Ein fesselnder Roman von {author}", "Die Bestseller-Reihe geht weiter",
     'Von Kritikern als "Pageturner" gefeiert, ein Muss', "Band {volume} der Reihe"),
    ("{author}による感動の物語", "ベストセラーシリーズ最新刊", '"一気読み必至"と話題、必読の一冊', "シリーズ第{volume}巻"),
    ("Una historia apasionante de {author}", "Continúa la serie más vendida",
     'Aclamada como "imprescindible", de lectura obligada', "Libro {volume} de la serie"),
    ("Un récit captivant de {author}", "La série à succès continue", 'Salué comme "inoubliable", à lire absolument',
     "Tome {volume} de la série"),
    ("Una storia avvincente di {author}", "Continua la serie bestseller",
     'Acclamato come "imperdibile", da leggere assolutamente', "Volume {volume} della serie"),
)
