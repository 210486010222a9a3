"""Vocabularies and distributions behind the synthetic demo warehouse (`demo_warehouse`).

Everything here is fixed data, independent of the seed: French départements and their
population, the age pyramid, common French given and family names, street names, and an
OMOP-like clinical vocabulary (conditions with ICD-10 source values, drugs with ATC codes,
measurements with LOINC codes and units).

The head of the condition, drug and measurement lists uses genuine OMOP standard concept ids
(201826 type 2 diabetes, 320128 essential hypertension, 1545958 atorvastatin, 3004410 HbA1c...).
The tail of the condition list pairs real ICD-10 codes with realistic-looking concept ids: it is
demo data, not a terminology to map real records with.

Nothing here draws random numbers: the generator passes its draws in (`measurement_values`), and
the SQL at the end only formats the generator's integer columns into the catalog's columns.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

# --- Population ------------------------------------------------------------------------------

# France, 1 January 2024 (INSEE, thousands), five-year bands 0-4 ... 95-99, then 100.
AGE_BAND_POPULATION = (
    3500, 3850, 4150, 4200, 3950, 3750, 4000, 4250, 4200, 4300, 4450,
    4400, 4200, 3950, 3700, 2900, 1950, 1350, 700, 190, 30,
)  # fmt: skip
AGE_BAND_FEMALE_SHARE = (
    0.488, 0.488, 0.488, 0.488, 0.500, 0.505, 0.508, 0.510, 0.510, 0.510, 0.512,
    0.515, 0.520, 0.525, 0.535, 0.560, 0.590, 0.640, 0.720, 0.800, 0.850,
)  # fmt: skip

GENDER_FEMALE = 8532
GENDER_MALE = 8507

# Département code, population (thousands), prefecture. 20 is Corsica (postcodes 20xxx);
# overseas départements have three-digit codes (postcodes 971xx...).
_DEPARTEMENTS_TEXT = """
1 657 Bourg-en-Bresse|2 531 Laon|3 335 Moulins|4 165 Digne-les-Bains|5 141 Gap|6 1098 Nice
7 329 Privas|8 270 Charleville-Mézières|9 153 Foix|10 310 Troyes|11 374 Carcassonne|12 279 Rodez
13 2043 Marseille|14 694 Caen|15 144 Aurillac|16 352 Angoulême|17 651 La Rochelle|18 302 Bourges
19 240 Tulle|20 344 Ajaccio|21 534 Dijon|22 600 Saint-Brieuc|23 116 Guéret|24 413 Périgueux
25 543 Besançon|26 516 Valence|27 599 Évreux|28 431 Chartres|29 915 Quimper|30 748 Nîmes
31 1400 Toulouse|32 191 Auch|33 1623 Bordeaux|34 1176 Montpellier|35 1079 Rennes|36 219 Châteauroux
37 610 Tours|38 1271 Grenoble|39 259 Lons-le-Saunier|40 413 Mont-de-Marsan|41 329 Blois
42 765 Saint-Étienne|43 227 Le Puy-en-Velay|44 1429 Nantes|45 680 Orléans|46 174 Cahors|47 331 Agen
48 76 Mende|49 818 Angers|50 496 Saint-Lô|51 566 Châlons-en-Champagne|52 172 Chaumont|53 307 Laval
54 733 Nancy|55 184 Bar-le-Duc|56 750 Vannes|57 1046 Metz|58 204 Nevers|59 2608 Lille|60 829 Beauvais
61 280 Alençon|62 1462 Arras|63 662 Clermont-Ferrand|64 682 Pau|65 229 Tarbes|66 479 Perpignan
67 1140 Strasbourg|68 764 Colmar|69 1876 Lyon|70 235 Vesoul|71 551 Mâcon|72 566 Le Mans
73 436 Chambéry|74 826 Annecy|75 2166 Paris|76 1255 Rouen|77 1421 Melun|78 1448 Versailles
79 375 Niort|80 570 Amiens|81 389 Albi|82 260 Montauban|83 1076 Toulon|84 561 Avignon
85 685 La Roche-sur-Yon|86 438 Poitiers|87 372 Limoges|88 364 Épinal|89 335 Auxerre|90 141 Belfort
91 1301 Évry-Courcouronnes|92 1624 Nanterre|93 1644 Bobigny|94 1407 Créteil|95 1249 Cergy
971 384 Basse-Terre|972 361 Fort-de-France|973 286 Cayenne|974 868 Saint-Denis|976 279 Mamoudzou
"""


@dataclass(frozen=True)
class Departements:
    codes: np.ndarray  # int: 1..95 or 971..976
    weights: np.ndarray  # population shares, sum 1
    prefectures: tuple[str, ...]


def _parse_departements() -> Departements:
    entries = [item.split(" ", 2) for line in _DEPARTEMENTS_TEXT.strip().splitlines() for item in line.split("|")]
    codes = np.array([int(code) for code, _, _ in entries], dtype=np.int64)
    population = np.array([float(pop) for _, pop, _ in entries])
    return Departements(codes, population / population.sum(), tuple(name for _, _, name in entries))


DEPARTEMENTS = _parse_departements()


def _words(text: str) -> tuple[str, ...]:
    return tuple(word.replace("_", " ") for word in text.split())


# INSEE codes of birth countries for people born abroad (NIR birthplace 99xxx), with weights.
BIRTH_COUNTRIES = (350, 352, 351, 139, 134, 127, 109, 131, 341, 122, 208, 216, 312, 336)
BIRTH_COUNTRY_WEIGHTS = (18, 22, 9, 10, 5, 5, 3, 3, 4, 3, 2, 3, 4, 3)
BORN_ABROAD_SHARE = 0.08

FEMALE_GIVEN_NAMES = _words(
    """Marie Nathalie Isabelle Sylvie Catherine Christine Françoise Monique Martine Valérie
    Sandrine Stéphanie Véronique Nicole Sophie Céline Chantal Jacqueline Anne Patricia Aurélie
    Julie Camille Laura Sarah Emma Léa Manon Chloé Inès Jade Louise Alice Lina Rose Anna Ambre
    Mia Léna Juliette Élodie Caroline Émilie Audrey Laetitia Virginie Hélène Brigitte Danielle
    Josiane Jeanne Suzanne Madeleine Simone Denise Colette Yvette Ginette Odette Paulette Claire
    Pauline Mathilde Charlotte Clara Océane Marine Lucie Margaux Agathe Zoé Nadia Fatima Amina
    Yasmine Christelle Mélanie Florence Agnès Marie-Claude Anne-Sophie"""
)
MALE_GIVEN_NAMES = _words(
    """Jean Pierre Michel André Philippe Alain Jacques Bernard Patrick Daniel Christian Nicolas
    Éric Frédéric Laurent Stéphane David Olivier Christophe Sébastien Julien Thomas Alexandre
    Antoine Maxime Kévin Romain Lucas Hugo Louis Gabriel Léo Raphaël Arthur Jules Adam Nathan
    Paul Ethan Noah Mathis Théo Enzo Clément Guillaume François Jean-Pierre Jean-Claude Jean-Luc
    Gérard Claude Serge René Roger Marcel Robert Henri Georges Yves Didier Thierry Pascal Vincent
    Franck Cédric Jérôme Fabrice Mohamed Karim Mehdi Yanis Samuel Benjamin Florian Quentin
    Anthony Jonathan Dominique Gilles Hervé"""
)
FAMILY_NAMES = _words(  # "_" stands for a space inside a name
    """Martin Bernard Thomas Petit Robert Richard Durand Dubois Moreau Laurent Simon
    Michel Lefebvre Leroy Roux David Bertrand Morel Fournier Girard Bonnet Dupont Lambert Fontaine
    Rousseau Vincent Muller Lefèvre Faure André Mercier Blanc Guérin Boyer Garnier Chevalier
    François Legrand Gauthier Garcia Perrin Robin Clément Morin Nicolas Henry Roussel Mathieu
    Gautier Masson Marchand Duval Denis Dumont Marie Lemaire Noël Meyer Dufour Meunier Brun
    Blanchard Giraud Joly Rivière Lucas Brunet Gaillard Barbier Arnaud Martinez Gérard Roche
    Renard Schmitt Roy Leroux Colin Vidal Caron Picard Roger Fabre Aubert Lemoine Renaud Dumas
    Lacroix Olivier Philippe Bourgeois Pierre Benoît Rey Leclerc Payet Rolland Leclercq Guillaume
    Lecomte Lopez Jean Dupuy Guillot Hubert Berger Carpentier Sanchez Dupuis Moulin Louis
    Deschamps Huet Vasseur Perez Boucher Fleury Royer Klein Jacquet Adam Paris Poirier Marty
    Aubry Guyot Carré Charles Renault Charpentier Ménard Maillard Baron Bertin Bailly Hervé
    Schneider Fernandez Le_Gall Collet Léger Bouvier Julien Prévost Millet Perrot Daniel Le_Roux
    Cousin Germain Breton Besson Langlois Rémy Le_Goff Pelletier Lévêque Perrier Leblanc Barré
    Lebrun Marchal Weber Mallet Hamon Boulanger Jacob Monnier Michaud Rodriguez Guichard Gillet
    Étienne Grondin Poulain Tessier Chevallier Collin Chauvin Da_Silva Bouchet Gay Lemaître
    Bénard Maréchal Humbert Reynaud Antoine Hoarau Perret Barthélemy Cordier Pichon Lejeune
    Gilbert Lamy Delaunay Pasquier Carlier Laporte"""
)

STREET_TYPES = ("rue", "rue", "rue", "avenue", "boulevard", "place", "chemin", "allée", "impasse", "route")
STREET_NAMES = (
    "de la République", "Victor Hugo", "Jean Jaurès", "du Général de Gaulle", "Pasteur",
    "de la Gare", "des Écoles", "Jules Ferry", "de l'Église", "du Moulin", "Voltaire", "Gambetta",
    "Carnot", "de la Paix", "des Lilas", "Émile Zola", "du Château", "de la Liberté", "des Tilleuls",
    "Jean Moulin", "Anatole France", "Nationale", "du Stade", "des Peupliers", "de Verdun",
    "Aristide Briand", "Georges Clemenceau", "de la Mairie", "des Acacias", "du 8 Mai 1945",
    "Marcel Pagnol", "Saint-Martin", "des Vignes", "de Bretagne", "Louis Pasteur", "Albert Camus",
)
EMAIL_DOMAINS = (
    "gmail.com", "orange.fr", "free.fr", "hotmail.fr", "laposte.net", "sfr.fr", "yahoo.fr",
    "outlook.fr", "wanadoo.fr", "icloud.com",
)
EMAIL_DOMAIN_WEIGHTS = (34, 16, 10, 10, 7, 6, 6, 5, 4, 2)
# Second digit of a French phone number: 1-5 landlines by region, 6-7 mobiles, 9 internet boxes.
PHONE_PREFIX_WEIGHTS = (8, 5, 5, 5, 5, 46, 18, 1, 7)

# --- Clinical vocabulary ---------------------------------------------------------------------

VISIT_CONCEPTS = (9201, 9202, 9203)  # inpatient, outpatient, emergency
VISIT_SOURCE_VALUES = ("HOSPIT", "CONSULT", "URGENCES")
VISIT_TYPE_WEIGHTS = (0.18, 0.67, 0.15)
# Events per visit relative to the average visit: a stay codes more than a consultation.
VISIT_EVENT_INTENSITY = (2.2, 0.55, 1.2)
CARE_SITES_PER_VISIT_TYPE = 20

DIABETES = (201826, "E11.9")
HYPERTENSION = (320128, "I10")
HYPERCHOLESTEROLEMIA = (437827, "E78.0")
# Person-level chronic conditions, prevalence by age (linear between anchors): type 2 diabetes
# ~7% of adults, rising with age, more in men; hypertension and lipids more in diabetics.
CHRONIC_AGE_ANCHORS = (0, 17, 18, 30, 40, 50, 60, 70, 80, 100)
DIABETES_PREVALENCE = (0.001, 0.002, 0.008, 0.012, 0.03, 0.07, 0.115, 0.155, 0.16, 0.14)
HYPERTENSION_PREVALENCE = (0.002, 0.005, 0.01, 0.04, 0.10, 0.20, 0.33, 0.45, 0.55, 0.60)
HYPERCHOLESTEROLEMIA_PREVALENCE = (0.0, 0.002, 0.005, 0.03, 0.07, 0.12, 0.18, 0.22, 0.21, 0.18)
DIABETES_MALE_RATIO = 1.2  # relative to women, whose factor keeps the overall mean
# Share of a chronic patient's visits that code the chronic condition.
CHRONIC_CODING_RATE = 0.3

# concept_id, ICD-10, sex restriction (M, F or -), label. Order is frequency rank (Zipf-like).
_CONDITIONS_TEXT = """
437663 R50.9 - Fever|77670 R07.4 - Chest pain|200219 R10.4 - Abdominal pain|254761 R05 - Cough|312437 R06.0 - Dyspnea
4223659 R53 - Fatigue|27674 R11 - Nausea and vomiting|375527 R51 - Headache|313217 I48.9 - Atrial fibrillation
316139 I50.9 - Heart failure|255573 J44.9 - COPD|255848 J18.9 - Pneumonia|81902 N39.0 - Urinary tract infection
80180 M19.9 - Osteoarthritis|194133 M54.5 - Low back pain|317009 J45.9 - Asthma|440383 F32.9 - Depressive disorder
442077 F41.9 - Anxiety disorder|433736 E66.9 - Obesity|140673 E03.9 - Hypothyroidism
318800 K21.9 - Gastroesophageal reflux|46271022 N18.9 - Chronic kidney disease|439777 D64.9 - Anemia
315286 I25.9 - Chronic ischemic heart disease|4329847 I21.9 - Myocardial infarction|443454 I63.9 - Cerebral infarction
37311061 U07.1 - COVID-19|4266367 J11.1 - Influenza|260139 J20.9 - Acute bronchitis|196523 R19.7 - Diarrhea
75860 K59.0 - Constipation|80502 M81.9 - Osteoporosis|378419 G30.9 - Alzheimer's disease
381270 G20 - Parkinson's disease|380378 G40.9 - Epilepsy|318736 G43.9 - Migraine|197320 N17.9 - Acute renal failure
440417 I26.9 - Pulmonary embolism|4133004 I80.2 - Deep venous thrombosis|192671 K92.2 - Gastrointestinal hemorrhage
436659 D50.9 - Iron deficiency anemia|201254 E10.9 - Type 1 diabetes mellitus|80809 M06.9 - Rheumatoid arthritis
4112853 C50.9 F Malignant tumor of breast|200962 C61 M Malignant neoplasm of prostate
4180790 C18.9 - Malignant tumor of colon|443388 C34.9 - Malignant tumor of lung|133834 L20.9 - Atopic dermatitis
140168 L40.0 - Psoriasis|435243 F10.2 - Alcohol dependence|4209423 F17.2 - Nicotine dependence
4230399 S72.0 - Fracture of neck of femur|375415 S06.0 - Concussion|313459 G47.3 - Sleep apnea
257007 J30.4 - Allergic rhinitis|25297 J02.9 - Acute pharyngitis|260427 J00 - Common cold|372328 H66.9 - Otitis media
379019 H10.9 - Conjunctivitis|375545 H26.9 - Cataract|435783 F20.9 - Schizophrenia|436665 F31.9 - Bipolar disorder
4182210 F03 - Dementia|321588 I51.9 - Heart disease|321318 I20.9 - Angina pectoris
381316 I64 - Cerebrovascular accident|373503 G45.9 - Transient cerebral ischemia
321052 I73.9 - Peripheral vascular disease|4027663 K80.2 - Gallstone|440448 K37 - Appendicitis
201606 K50.9 - Crohn's disease|81893 K51.9 - Ulcerative colitis|4064161 K74.6 - Cirrhosis of liver
195588 N30.9 - Cystitis|198803 N40 M Benign prostatic hyperplasia|197672 R32 - Urinary incontinence
201620 N20.0 - Kidney stone|134438 L25.9 - Contact dermatitis|141095 L70.0 - Acne|436962 G47.0 - Insomnia
139900 L50.9 - Urticaria|132797 A41.9 - Sepsis|4242574 L03.9 - Cellulitis|77074 M25.5 - Joint pain
4171544 R42 - Vertigo|135360 R55 - Syncope|4127089 E86 - Dehydration|435515 E87.1 - Hyponatremia
434610 E87.5 - Hyperkalemia|440674 M10.9 - Gout|43792019 A09 - Infectious gastroenteritis
40966530 A49.9 - Bacterial infection|149658 B02.9 - Herpes zoster|4219242 B18.2 - Chronic hepatitis C
40975854 B34.9 - Viral infection|45770073 C15.9 - Malignant tumor of esophagus
45321090 C16.9 - Malignant tumor of stomach|4207974 C20 - Malignant tumor of rectum
199821 C22.0 - Hepatocellular carcinoma|41468112 C25.9 - Malignant tumor of pancreas
4161733 C43.9 - Malignant melanoma of skin|45271609 C56 F Malignant tumor of ovary
41297306 C64 - Malignant tumor of kidney|40979970 C67.9 - Malignant tumor of bladder
46187608 C71.9 - Malignant tumor of brain|44385751 C73 - Malignant tumor of thyroid
4237599 C79.5 - Secondary malignant neoplasm of bone|41166649 C81.9 - Hodgkin lymphoma
405354 C83.3 - Diffuse large B-cell lymphoma|4235318 C90.0 - Multiple myeloma
4061900 C91.1 - Chronic lymphocytic leukemia|209683 C92.0 - Acute myeloid leukemia
45161478 D12.6 - Benign neoplasm of colon|43417509 D25.9 F Leiomyoma of uterus
4260400 D47.1 - Myeloproliferative disease|44457025 D69.6 - Thrombocytopenia|40988932 E04.1 - Thyroid nodule
433010 E05.0 - Graves' disease|4011829 E55.9 - Vitamin D deficiency|4320297 E83.5 - Hypercalcemia
41564984 E87.6 - Hypokalemia|338612 F05.9 - Delirium|217223 F19.2 - Drug dependence
275667 F43.1 - Post-traumatic stress disorder|275972 F50.0 - Anorexia nervosa|4199460 F84.0 - Autism
42425795 F90.0 - Attention deficit disorder|44548162 G35 - Multiple sclerosis|4095600 G44.2 - Tension-type headache
349648 G56.0 - Carpal tunnel syndrome|4319717 G61.0 - Guillain-Barré syndrome|44310605 G62.9 - Polyneuropathy
335719 G70.0 - Myasthenia gravis|44519306 G80.9 - Cerebral palsy|4209947 G93.4 - Encephalopathy
4109452 H35.3 - Macular degeneration|4178286 H40.9 - Glaucoma|41748902 H81.1 - Benign paroxysmal vertigo
4053196 H90.3 - Sensorineural hearing loss|239027 H91.1 - Presbycusis|43394114 I05.0 - Mitral stenosis
4190926 I34.0 - Mitral regurgitation|374312 I35.0 - Aortic stenosis|4163500 I42.0 - Dilated cardiomyopathy
44494971 I44.7 - Left bundle branch block|4084640 I47.1 - Supraventricular tachycardia
41709791 I49.5 - Sick sinus syndrome|144178 I61.9 - Intracerebral hemorrhage|42670393 I67.8 - Cerebrovascular disease
4192256 I69.4 - Sequelae of stroke|413937 I70.2 - Atherosclerosis of limb arteries
4333678 I71.4 - Abdominal aortic aneurysm|4125508 I83.9 - Varicose veins|43462674 I87.2 - Venous insufficiency
144647 J01.9 - Acute sinusitis|231525 J03.9 - Acute tonsillitis|4234476 J06.9 - Upper respiratory infection
183559 J15.9 - Bacterial pneumonia|307071 J32.9 - Chronic sinusitis|449953 J43.9 - Emphysema
4342348 J47 - Bronchiectasis|43739274 J69.0 - Aspiration pneumonia|380626 J84.1 - Pulmonary fibrosis
41207710 J90 - Pleural effusion|43847076 J96.0 - Acute respiratory failure|4044522 K02.9 - Dental caries
209246 K25.9 - Gastric ulcer|45610248 K29.7 - Gastritis|41787888 K35.8 - Acute appendicitis
4287459 K40.9 - Inguinal hernia|44897281 K42.9 - Umbilical hernia|4073007 K56.7 - Ileus
262033 K57.3 - Diverticular disease of colon|256111 K58.9 - Irritable bowel syndrome
4135981 K70.3 - Alcoholic cirrhosis|44323332 K76.0 - Fatty liver|44008485 K81.0 - Acute cholecystitis
41753695 K85.9 - Acute pancreatitis|4267673 L02.9 - Cutaneous abscess|4319057 L08.9 - Skin infection
45673397 L89.9 - Pressure ulcer|421753 L97 - Ulcer of lower limb|408253 M05.9 - Seropositive rheumatoid arthritis
4055631 M13.9 - Arthritis|4100299 M16.9 - Osteoarthritis of hip|4266188 M17.9 - Osteoarthritis of knee
43211445 M32.9 - Systemic lupus erythematosus|4265055 M35.3 - Polymyalgia rheumatica|44742722 M47.8 - Spondylosis
42557487 M48.0 - Spinal stenosis|4274312 M51.1 - Lumbar disc disorder|4234633 M53.1 - Cervicobrachial syndrome
4205711 M65.9 - Tenosynovitis|4126164 M75.1 - Rotator cuff syndrome|41775592 M79.7 - Fibromyalgia
321985 N04.9 - Nephrotic syndrome|42322036 N13.3 - Hydronephrosis|4049348 N28.1 - Cyst of kidney
44099867 N63 F Breast lump|4211712 N80.9 F Endometriosis|41253379 N81.2 F Uterovaginal prolapse
43315179 N92.0 F Menorrhagia|360926 N95.1 F Menopausal symptoms|4221382 R00.2 - Palpitations
399894 R26.8 - Gait abnormality|4171467 R31 - Hematuria|352988 R33 - Retention of urine|4008824 R40.2 - Coma
246605 R41.0 - Disorientation|367908 R56.8 - Seizure|42726970 R60.0 - Localized edema
44900083 R63.4 - Abnormal weight loss|187384 S00.9 - Superficial injury of head|224972 S01.0 - Open wound of scalp
4329604 S06.9 - Intracranial injury|44675047 S22.3 - Fracture of rib|4093270 S32.0 - Fracture of lumbar vertebra
4131307 S42.2 - Fracture of upper humerus|42069276 S52.5 - Fracture of lower radius|4248911 S62.6 - Fracture of finger
356585 S82.6 - Fracture of lateral malleolus|336090 S83.5 - Sprain of knee ligament|4112816 S93.4 - Sprain of ankle
203252 T78.4 - Allergy|4028515 T81.4 - Postoperative infection|4327915 Z51.1 - Chemotherapy session
"""


@dataclass(frozen=True)
class CodedConcepts:
    """Concepts with their source codes and a frequency distribution per sex."""

    concept_ids: np.ndarray
    source_values: tuple[str, ...]
    labels: tuple[str, ...]
    female_cdf: np.ndarray
    male_cdf: np.ndarray


def zipf_weights(count: int, exponent: float = 0.9, offset: float = 2.0) -> np.ndarray:
    """Weights of ranks 0..count-1 decreasing like a Zipf law, summing to 1."""
    weights = (np.arange(count) + offset) ** -exponent
    return weights / weights.sum()


def cumulative(weights: np.ndarray | tuple[float, ...]) -> np.ndarray:
    """Cumulative distribution of weights, ending exactly at 1 (for `np.searchsorted`)."""
    cdf = np.cumsum(np.asarray(weights, dtype=np.float64))
    cdf /= cdf[-1]
    cdf[-1] = 1.0
    return cdf


def _parse_conditions() -> CodedConcepts:
    entries = [item.split(" ", 3) for line in _CONDITIONS_TEXT.strip().splitlines() for item in line.split("|")]
    weights = zipf_weights(len(entries))
    sexes = np.array([sex for _, _, sex, _ in entries])
    female = np.where(sexes == "M", 0.0, weights)
    male = np.where(sexes == "F", 0.0, weights)
    return CodedConcepts(
        concept_ids=np.array([int(concept) for concept, _, _, _ in entries], dtype=np.int64),
        source_values=tuple(code for _, code, _, _ in entries),
        labels=tuple(label for _, _, _, label in entries),
        female_cdf=cumulative(female),
        male_cdf=cumulative(male),
    )


CONDITIONS = _parse_conditions()


@dataclass(frozen=True)
class Drug:
    concept_id: int
    atc: str
    name: str  # French international non-proprietary name, used in notes


def _drugs(text: str) -> tuple[Drug, ...]:
    entries = (item.split() for item in text.split("|"))
    return tuple(Drug(int(concept), atc, name.replace("-", " ")) for concept, atc, name in entries)


# Drugs anyone may receive, by frequency rank; the therapeutic classes below come on top for
# patients with the matching chronic condition.
GENERAL_DRUGS = _drugs(
    "1125315 N02BE01 paracétamol|1177480 M01AE01 ibuprofène|923645 A02BC01 oméprazole"
    "|1713332 J01CA04 amoxicilline|1301025 B01AB05 énoxaparine|1759842 J01CR02 amoxicilline-acide-clavulanique"
    "|1103314 N02AX02 tramadol|948078 A02BC02 pantoprazole|1112807 B01AC06 aspirine"
    "|956874 C03CA01 furosémide|1154343 R03AC02 salbutamol|1501700 H03AA01 lévothyroxine"
    "|906780 A03FA01 métoclopramide|1000560 A04AA01 ondansétron|1110410 N02AA01 morphine"
    "|1551099 H02AB07 prednisone|1550557 H02AB06 prednisolone|739138 N06AB06 sertraline"
    "|715939 N06AB10 escitalopram|781039 N05BA12 alprazolam|744740 N05CF02 zolpidem"
    "|723013 N05BA01 diazépam|1734104 J01FA10 azithromycine|1797513 J01MA02 ciprofloxacine"
    "|1777806 J01DD04 ceftriaxone|1322184 B01AC04 clopidogrel|43013024 B01AF02 apixaban"
    "|40241331 B01AF01 rivaroxaban|1310149 B01AA03 warfarine|1167322 M04AA01 allopurinol"
    "|1101554 M04AC01 colchicine|924566 G04CA02 tamsulosine|1149380 R03BA05 fluticasone"
    "|722031 N06AB05 paroxétine|797399 N03AX12 gabapentine|734354 N03AX16 prégabaline"
    "|711584 N03AX14 lévétiracétam|715997 N06DA02 donépézil|789578 N04BA02 lévodopa"
    "|1707687 J01XA01 vancomycine|19049105 A12BA01 chlorure-de-potassium|19095164 A11CC05 cholécalciférol"
    "|1595799 B03AA07 sulfate-ferreux|1367571 B01AB01 héparine|1326303 C01AA05 digoxine"
    "|1309944 C01BD01 amiodarone|970250 C03DA01 spironolactone"
)
DIABETES_DRUGS = _drugs(
    "1503297 A10BA02 metformine|19059796 A10BB09 gliclazide|1502905 A10AE04 insuline-glargine"
    "|1580747 A10BH01 sitagliptine|1567198 A10AB05 insuline-asparte|45774751 A10BK03 empagliflozine"
    "|44785829 A10BK01 dapagliflozine|40170911 A10BJ02 liraglutide"
)
ANTIHYPERTENSIVE_DRUGS = _drugs(
    "1332418 C08CA01 amlodipine|1334456 C09AA05 ramipril|1338005 C07AB07 bisoprolol"
    "|1367500 C09CA01 losartan|974166 C03AA03 hydrochlorothiazide|1308216 C09AA03 lisinopril"
    "|1314002 C07AB03 aténolol|1314577 C07AB12 nébivolol"
)
STATINS = _drugs(
    "1545958 C10AA05 atorvastatine|1539403 C10AA01 simvastatine|1510813 C10AA07 rosuvastatine"
    "|1551860 C10AA03 pravastatine"
)
# Chance that a prescription of a patient with the condition belongs to the class.
DIABETES_DRUG_SHARE = 0.30
ANTIHYPERTENSIVE_SHARE = 0.25
STATIN_SHARE_DIABETES = 0.20
STATIN_SHARE_HYPERCHOLESTEROLEMIA = 0.25
STATIN_SHARE_OTHER_ADULTS = 0.02
DRUG_QUANTITIES = (1.0, 7.0, 10.0, 14.0, 20.0, 28.0, 30.0, 56.0, 60.0, 84.0, 90.0)
DRUG_DAYS_SUPPLY = (1, 7, 7, 14, 14, 28, 30, 28, 30, 84, 90)
ALL_DRUGS = GENERAL_DRUGS + DIABETES_DRUGS + ANTIHYPERTENSIVE_DRUGS + STATINS
DRUG_CONCEPT_IDS = np.array([drug.concept_id for drug in ALL_DRUGS], dtype=np.int64)

# Zipf-like conditions first, then the chronic ones, which persons carry as flags.
CHRONIC_CONDITIONS = (DIABETES, HYPERTENSION, HYPERCHOLESTEROLEMIA)
CONDITION_CONCEPT_IDS = np.concatenate([CONDITIONS.concept_ids, [c for c, _ in CHRONIC_CONDITIONS]]).astype(np.int64)
CONDITION_SOURCE_VALUES = CONDITIONS.source_values + tuple(code for _, code in CHRONIC_CONDITIONS)


@dataclass(frozen=True)
class Measurement:
    concept_id: int
    loinc: str
    unit_concept_id: int
    mean: float
    sd: float
    low: float
    high: float
    decimals: int
    weight: float  # share among measurements of the average patient


MEASUREMENTS = (
    Measurement(3004249, "8480-6", 8876, 125.0, 16.0, 70.0, 240.0, 0, 0.10),  # systolic BP, mmHg
    Measurement(3012888, "8462-4", 8876, 75.0, 10.0, 35.0, 140.0, 0, 0.10),  # diastolic BP, mmHg
    Measurement(3027018, "8867-4", 8541, 78.0, 12.0, 30.0, 220.0, 0, 0.08),  # heart rate, /min
    Measurement(3020891, "8310-5", 586323, 37.0, 0.5, 34.5, 41.5, 1, 0.06),  # temperature, Cel
    Measurement(3025315, "29463-7", 9529, 72.0, 14.0, 1.5, 250.0, 1, 0.07),  # body weight, kg
    Measurement(3036277, "8302-2", 8582, 168.0, 9.0, 40.0, 210.0, 0, 0.02),  # body height, cm
    Measurement(3000963, "718-7", 8713, 13.8, 1.4, 5.0, 20.0, 1, 0.10),  # hemoglobin, g/dL
    Measurement(3000905, "6690-2", 9444, 7.5, 2.3, 0.5, 60.0, 1, 0.08),  # leukocytes, 10^9/L
    Measurement(3024929, "777-3", 9444, 250.0, 60.0, 5.0, 900.0, 0, 0.07),  # platelets, 10^9/L
    Measurement(3016723, "2160-0", 8749, 75.0, 0.25, 20.0, 1200.0, 0, 0.10),  # creatinine, umol/L
    Measurement(3023103, "2823-3", 8753, 4.2, 0.45, 2.0, 7.5, 1, 0.07),  # potassium, mmol/L
    Measurement(3019550, "2951-2", 8753, 139.0, 3.0, 115.0, 165.0, 0, 0.07),  # sodium, mmol/L
    Measurement(3004501, "2345-7", 8753, 5.4, 0.8, 2.0, 35.0, 1, 0.06),  # glucose, mmol/L
    Measurement(3020460, "1988-5", 8751, 4.0, 1.2, 0.2, 400.0, 1, 0.06),  # CRP, mg/L (lognormal)
    Measurement(3006923, "1742-6", 8645, 22.0, 0.45, 4.0, 2000.0, 0, 0.04),  # ALT, U/L (lognormal)
    Measurement(3028437, "13457-7", 8636, 1.25, 0.35, 0.2, 4.0, 2, 0.02),  # LDL cholesterol, g/L
    Measurement(3004410, "4548-4", 8554, 5.5, 0.35, 5.0, 12.0, 1, 0.02),  # HbA1c, %
)
HBA1C = 3004410
GLUCOSE = 3004501
# Extra share of a diabetic's measurements that are HbA1c or glucose (follow-up).
DIABETES_MONITORING_SHARE = 0.25
MEASUREMENT_INDEX = {m.concept_id: index for index, m in enumerate(MEASUREMENTS)}
MEASUREMENT_CDF = cumulative([m.weight for m in MEASUREMENTS])
MEASUREMENT_FIELDS = {
    field: np.array([getattr(m, field) for m in MEASUREMENTS])
    for field in ("concept_id", "unit_concept_id", "mean", "sd", "low", "high", "decimals")
}
# Lognormal results: `mean` is the median and `sd` the log-scale sigma.
_LOGNORMAL = np.isin(MEASUREMENT_FIELDS["concept_id"], (3016723, 3020460, 3006923))  # creatinine, CRP, ALT
_GROWTH_AGES = (0, 1, 2, 5, 10, 14, 18, 30, 60, 100)
_WEIGHT_KG = {False: (3.4, 9.6, 12.5, 18.5, 32, 53, 68, 80, 83, 72), True: (3.3, 9, 12, 18, 32, 50, 58, 64, 69, 62)}
_HEIGHT_CM = {False: (50, 75, 87, 110, 138, 163, 176, 177, 175, 170), True: (49, 74, 86, 109, 138, 159, 163, 164, 162, 157)}


def measurement_values(
    z: np.ndarray,
    code: np.ndarray,
    female: np.ndarray,
    age: np.ndarray,
    diabetes: np.ndarray,
    hypertension: np.ndarray,
    lipids: np.ndarray,
) -> np.ndarray:
    """Results of measurements `code` (indices into MEASUREMENTS) from standard normal draws `z`.

    Values follow sex, age in years (growth curves for children) and chronic conditions.
    """
    fields = MEASUREMENT_FIELDS
    mean, sd = fields["mean"][code], fields["sd"][code]
    value = np.where(_LOGNORMAL[code], mean * np.exp(sd * z), mean + sd * z)

    def rows(concept: int) -> np.ndarray:
        return np.flatnonzero(code == MEASUREMENT_INDEX[concept])

    def growth(curves: dict[bool, tuple[float, ...]], at: np.ndarray) -> np.ndarray:
        return np.where(female[at], np.interp(age[at], _GROWTH_AGES, curves[True]), np.interp(age[at], _GROWTH_AGES, curves[False]))

    at = rows(3025315)  # body weight
    value[at] = growth(_WEIGHT_KG, at) * (1 + 0.1 * diabetes[at]) * (1 + 0.13 * z[at])
    at = rows(3036277)  # body height
    value[at] = growth(_HEIGHT_CM, at) * (1 + 0.04 * z[at])
    at = rows(3004249)  # systolic blood pressure
    value[at] = np.interp(age[at], (0, 18, 40, 80), (95, 115, 122, 140)) + 10 * hypertension[at] + 14 * z[at]
    at = rows(3012888)  # diastolic blood pressure
    value[at] = np.interp(age[at], (0, 18, 40, 80), (58, 70, 78, 78)) + 6 * hypertension[at] + 9 * z[at]
    at = rows(3027018)  # heart rate
    value[at] = np.interp(age[at], (0, 1, 6, 12, 18), (130, 120, 95, 80, 76)) + 12 * z[at]
    at = rows(3000963)  # hemoglobin
    value[at] += np.where(female[at], -0.7, 0.7)
    at = rows(3016723)  # creatinine: lower in women and children, rising after 50
    value[at] *= np.where(female[at], 0.85, 1.1) * (1 + 0.006 * np.clip(age[at] - 50, 0, None)) * np.where(age[at] < 12, 0.5, 1)
    at = rows(GLUCOSE)
    value[at] = np.where(diabetes[at], 8.6 + 2.6 * z[at], value[at])
    at = rows(HBA1C)
    value[at] = np.where(diabetes[at], 7.6 + 1.3 * z[at], value[at])
    at = rows(3028437)  # LDL cholesterol
    value[at] += 0.35 * lipids[at]
    scale = 10.0 ** fields["decimals"][code]
    return np.round(np.clip(value, fields["low"][code], fields["high"][code]) * scale) / scale


# --- Notes -----------------------------------------------------------------------------------

NOTE_TYPE_BY_VISIT = (44814637, 44814640, 44814645)  # discharge summary, outpatient note, note
NOTE_REASONS = (
    "douleur thoracique", "dyspnée", "fièvre", "déséquilibre glycémique", "hypertension artérielle",
    "chute à domicile", "douleur abdominale", "bilan de diabète de type 2", "malaise",
    "insuffisance cardiaque décompensée", "pneumopathie", "infection urinaire", "lombalgie",
    "céphalées", "suivi de BPCO", "fibrillation auriculaire", "anémie", "altération de l'état général",
    "suivi post-opératoire", "crise d'asthme", "syndrome dépressif", "vertiges", "gastro-entérite",
    "plaie de la main", "entorse de la cheville", "COVID-19", "bronchiolite", "toux persistante",
)
# French free-text templates, with their weights for inpatient, outpatient and emergency visits.
# Placeholders: {civilite} {nom} {prenom} {e} (feminine ending) {age} {motif} {traitement}
# {telephone} {duree} {pas} {pad} {eva}. Some name the patient or give their phone number, as
# real notes do: this is the leak the extract must keep out.
NOTE_TEMPLATES = (
    (("Consultation du jour. Patient{e} de {age} ans vu{e} pour {motif}. Examen clinique sans "
     "particularité. PA {pas}/{pad} mmHg. Poursuite du traitement par {traitement}. Revoir dans {duree} mois."), (0, 30, 0)),
    (("Compte rendu d'hospitalisation. Motif : {motif}. Évolution favorable sous {traitement}. "
     "Sortie à domicile. Contrôle biologique dans {duree} semaines."), (40, 0, 0)),
    (("Passage aux urgences pour {motif}. Constantes stables (PA {pas}/{pad}). Bilan biologique "
     "réalisé. Retour à domicile avec {traitement}."), (0, 0, 50)),
    (("Synthèse : {motif} chez un{e} patient{e} de {age} ans. Introduction de {traitement}. "
     "Éducation thérapeutique faite."), (12, 15, 5)),
    (("Compte rendu de consultation de suivi. Bonne observance de {traitement}. Pas de nouvel "
     "événement. Prochain rendez-vous dans {duree} mois."), (0, 30, 0)),
    (("Note infirmière : patient{e} installé{e}, douleur évaluée à {eva}/10. Surveillance des "
     "constantes. Motif d'admission : {motif}."), (30, 0, 30)),
    (("Courrier au médecin traitant. Cher confrère, j'ai revu ce jour {civilite} {nom} {prenom}, "
     "{age} ans, pour {motif}. Je propose de maintenir {traitement}. Bien confraternellement."), (3, 6, 2)),
    (("Observation médicale. {civilite} {nom}, {age} ans, adressé{e} pour {motif}. Pas d'allergie "
     "connue. Traitement : {traitement}."), (4, 2, 4)),
    (("Appel de {civilite} {prenom} {nom} au {telephone} : signale une aggravation ({motif}). "
     "Conseil de reconsulter."), (1, 2, 1)),
    ("Patient{e} joignable au {telephone}. Antécédents : {motif}. Traitement habituel : {traitement}.", (2, 2, 2)),
)
NOTES_PER_PERSON = 1.0


# --- SQL rendering ---------------------------------------------------------------------------
# The generator draws integers; DuckDB turns them into text with these expressions, reading
# each batch's NumPy arrays by name (dates are day numbers since 1970-01-01).


def sql_string(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: tuple[str, ...] | list[str]) -> str:
    """A DuckDB list literal of strings."""
    return "[" + ", ".join(sql_string(v) for v in values) + "]"


def template_sql(template: str, fields: dict[str, str]) -> str:
    """A note template with ``{field}`` placeholders as a SQL string concatenation."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(sql_string(literal))
        if field is not None:
            parts.append(fields[field])
    return "(" + " || ".join(parts) + ")"


DAY_DATE_SQL = "DATE '1970-01-01' + CAST(day AS INTEGER)"  # macro day_date(day)
# Each becomes a temporary macro ``name(i)`` returning the i-th (from 0) string of the list.
VOCABULARY_MACROS: dict[str, tuple[str, ...]] = {
    "given_name": FEMALE_GIVEN_NAMES + MALE_GIVEN_NAMES,
    "family_name": FAMILY_NAMES,
    "street_type": STREET_TYPES,
    "street_name": STREET_NAMES,
    "email_domain": EMAIL_DOMAINS,
    "prefecture": DEPARTEMENTS.prefectures,
    "visit_source": VISIT_SOURCE_VALUES,
    "condition_code": CONDITION_SOURCE_VALUES,
    "drug_atc": tuple(drug.atc for drug in ALL_DRUGS),
    "drug_name": tuple(drug.name for drug in ALL_DRUGS),
    "loinc": tuple(m.loinc for m in MEASUREMENTS),
    "note_reason": NOTE_REASONS,
}
PHONE_SQL = "printf('0%d %02d %02d %02d %02d', prefix, digits // 1000000, digits // 10000 % 100, digits // 100 % 100, digits % 100)"
EMAIL_PART = "replace(lower(strip_accents({})), ' ', '')"
NOTE_FIELDS = {
    "civilite": "CASE WHEN female THEN 'Mme' ELSE 'M.' END",
    "e": "CASE WHEN female THEN 'e' ELSE '' END",
    "nom": "upper(family_name(family))",
    "prenom": "given_name(given)",
    "age": "CAST(age AS VARCHAR)",
    "motif": "note_reason(reason)",
    "traitement": "drug_name(drug)",
    "telephone": "phone_text(phone_prefix, phone_digits)",
    "duree": "CAST(months AS VARCHAR)",
    "pas": "CAST(systolic AS VARCHAR)",
    "pad": "CAST(diastolic AS VARCHAR)",
    "eva": "CAST(pain AS VARCHAR)",
}
NOTE_TEXT_SQL = (
    "CASE template "
    + " ".join(f"WHEN {i} THEN {template_sql(text, NOTE_FIELDS)}" for i, (text, _) in enumerate(NOTE_TEMPLATES))
    + " END"
)

# For each table, in catalog order, the SQL expression of each column over the batch arrays.
COLUMN_SQL: dict[str, dict[str, str]] = {
    "person": {
        "person_id": "person_id",
        "gender_concept_id": f"CASE WHEN female THEN {GENDER_FEMALE} ELSE {GENDER_MALE} END",
        "birth_date": "day_date(birth_day)",
        "postcode": "printf('%05d', postcode)",
        "gender_source_value": "CASE WHEN female THEN 'F' ELSE 'M' END",
    },
    "visit_occurrence": {
        "visit_occurrence_id": "visit_occurrence_id",
        "person_id": "person_id",
        "visit_concept_id": "visit_concept_id",
        "visit_start_date": "day_date(start_day)",
        "visit_end_date": "day_date(end_day)",
        "care_site_id": "care_site_id",
        "visit_source_value": "visit_source(visit_type)",
    },
    "condition_occurrence": {
        "condition_occurrence_id": "record_id",
        "person_id": "person_id",
        "condition_concept_id": "concept_id",
        "condition_start_date": "day_date(start_day)",
        "condition_end_date": "day_date(end_day)",
        "visit_occurrence_id": "visit_occurrence_id",
        "condition_source_value": "condition_code(code)",
    },
    "drug_exposure": {
        "drug_exposure_id": "record_id",
        "person_id": "person_id",
        "drug_concept_id": "concept_id",
        "drug_exposure_start_date": "day_date(start_day)",
        "drug_exposure_end_date": "day_date(end_day)",
        "quantity": "quantity",
        "visit_occurrence_id": "visit_occurrence_id",
        "drug_source_value": "drug_atc(code)",
    },
    "measurement": {
        "measurement_id": "record_id",
        "person_id": "person_id",
        "measurement_concept_id": "concept_id",
        "measurement_date": "day_date(day)",
        "value_as_number": "value",
        "unit_concept_id": "unit_concept_id",
        "visit_occurrence_id": "visit_occurrence_id",
        "measurement_source_value": "loinc(code)",
    },
    "note": {
        "note_id": "record_id",
        "person_id": "person_id",
        "note_date": "day_date(day)",
        "note_type_concept_id": "note_type_concept_id",
        "note_text": NOTE_TEXT_SQL,
        "visit_occurrence_id": "visit_occurrence_id",
    },
    "identity": {
        "person_id": "person_id",
        "family_name": "family_name(family)",
        "given_name": "given_name(given)",
        "nir": "printf('%013d%02d', nir_body, nir_key)",
        "address": "printf('%d %s %s, %05d %s', street_number, street_type(street_type), street_name(street), postcode, prefecture(departement))",
        "phone": "phone_text(phone_prefix, phone_digits)",
        "email": (
            EMAIL_PART.format("given_name(given)") + " || '.' || " + EMAIL_PART.format("family_name(family)")
            + " || CASE WHEN email_number > 0 THEN CAST(email_number AS VARCHAR) ELSE '' END"
            + " || '@' || email_domain(email_domain)"
        ),
    },
    "opt_out": {
        "person_id": "person_id",
        "opted_out_on": "day_date(day)",
    },
}
