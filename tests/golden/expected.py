"""Every built-in field of the golden company, hand-computed from docs/plugins/*.md.

Analysis date 2026-06-30; "12 months" = 2025-07-01 .. 2026-06-30 (no document lies near
its start).  Only posted and paid invoices count; credit notes deduct (R203: -3000 for
C02); the cancelled I302 and the draft I303 of C03 count nowhere.  C06 never bought.

RFM (7 buying customers; score = 1 + floor(5 x share of buyers strictly worse)):
  R days  C08 5, C05 10, C02 20, C01 46, C07 86, C03 161, C04 486
          -> worse 6,5,4,3,2,1,0 of 7 -> R 5,4,3,3,2,1,1
  F       C01 6; C02 3 (the credit note is no purchase); C07 2, C08 2; C03 1, C05 1; C04 0
          -> worse 6; 5; 3,3; 1,1; 0 -> F 5; 4; 3,3; 1,1; 1
  M       C01 12000, C02 9100 (6000+3000-3000+3100), C07 2500, C08 1800, C03 500, C05 300,
          C04 0 -> worse 6,5,4,3,2,1,0 -> M 5,4,3,3,2,1,1
  FM = floor((F + M + 1) / 2); segment = first rule of the table that matches.
ABC (net revenue, 12 months; total 26200, 80 % = 20960, 95 % = 24890): C01 12000 (cum
  12000) A, C02 9100 (cum 21100, crosses 80 %) A, C07 2500 (23600) B, C08 1800 (25400,
  crosses 95 %) B, C03, C05, C04 C.
XYZ (monthly net revenue 2025-07 .. 2026-06, months before the first purchase left out,
  population std / mean):
  C01 12 months, 2000 in 6 of them: sqrt(6/6) = 1.000 -> X
  C02 11 months (from 2025-08): 6000, 3000 (Dec), -3000 (Feb), 3100 (Jun): 2.729 -> Z
  C03 6 months (from 2026-01), 500 in one: sqrt(5/1) = 2.236 -> Y
  C07 9 months (from 2025-10): 1500, 1000: 1.918 -> Y
  C08 12 months: 800 (Jul), 1000 (Jun): 2.253 -> Y
  C04 12 months of 0: mean not positive -> no class; C05 one month (< 3) -> no class
Next best offer (segment = ABC class; the not-offered product most bought by the
  segment's customers, ties by code; the value is the product's name):
  A = C01 {P-A}, C02 {P-B, P-C}: every product has one buyer -> C01 Bolt (P-B before
  P-C), C02 Anvil.  B = C07, C08, both {P-A, P-B} -> Crate (no buyer in B, but the only
  one left).  C = C03 {P-B}, C05 {P-B}, C04 {P-A}: C03 and C05 Anvil (1 buyer) before
  Crate (0); C04 Bolt (2 buyers).
"""

from __future__ import annotations

from typing import Any

EXPECTED: dict[str, dict[str, Any]] = {
    "C01": {
        "rfm_recency_days": 46,  # 2026-05-15 -> 2026-06-30
        "rfm_frequency": 6,
        "rfm_monetary": 12000.0,
        "rfm_score": "355",
        "rfm_segment": "loyal",  # R 3, FM 5
        "abc_class": "A",
        "xyz_class": "X",
        "abc_xyz": "AX",
        "demand_cv": 1.0,
        "next_best_offer": "Bolt",
        "kpi_revenue_12m": 12000.0,
        "kpi_revenue_growth": 500.0,  # 12000 against 2000 (I101, 2024-09-15)
        "kpi_aov": 2000.0,
        "kpi_clv_historic": 14000.0,
        "kpi_distinct_products": 1,
        "kpi_purchases_per_year": 3.91,  # 7 invoices / (653 days / 365)
        "kpi_interpurchase_days": 101.2,  # 607 days / 6
        "kpi_churn_risk": 0.37,  # 1 - exp(-46 / 101.17)
        "kpi_avg_days_late": 0.0,  # all paid ten days early
        "kpi_paid_late_share": 0.0,
        "kpi_overdue_amount": 0.0,
        "kpi_opportunities_won": 0,  # counts: 0 for a buyer without any
        "kpi_opportunities_lost": 0,
        "kpi_complaints_12m": 0,
        "loyalty_tier": "gold",  # 12000 >= 10000 and 6 >= 4 invoices, paid on time
        "loyalty_discount": 10.0,
        "loyalty_points": 12000,  # I101's 2000 expired on 2025-09-15
        "loyalty_points_expiring": 2000,  # I102's, on 2026-07-15
        "loyalty_next_expiry": "2026-07-15",
    },
    "C02": {
        "rfm_recency_days": 20,
        "rfm_frequency": 3,
        "rfm_monetary": 9100.0,
        "rfm_score": "344",
        "rfm_segment": "loyal",  # R 3, FM floor(9/2) = 4
        "abc_class": "A",
        "xyz_class": "Z",
        "abc_xyz": "AZ",
        "demand_cv": 2.729,
        "next_best_offer": "Anvil",
        "kpi_revenue_12m": 9100.0,
        "kpi_aov": 3033.33,  # 9100 / 3 invoices
        "kpi_clv_historic": 9100.0,
        "kpi_distinct_products": 2,
        "kpi_purchases_per_year": 3.0,  # 3 invoices, less than a year: one year
        "kpi_interpurchase_days": 152.0,  # 2025-08-10 .. 2026-06-10, 304 days / 2
        "kpi_churn_risk": 0.12,  # 1 - exp(-20 / 152)
        "kpi_avg_days_late": 15.0,  # I201 30 days late, I202 early (0)
        "kpi_paid_late_share": 50.0,
        "kpi_overdue_amount": 0.0,  # I204 is due 2026-07-10
        "kpi_quote_conversion": 50.0,  # Q4 accepted, Q3 refused
        "kpi_opportunities_won": 0,
        "kpi_opportunities_lost": 1,
        "kpi_last_refusal": "2026-04-01 quote refused",  # same day as O3: the quote first
        "kpi_complaints_12m": 0,
        "loyalty_tier": "silver",  # 9100 >= 3000, 3 >= 2 invoices; below gold's 10000
        "loyalty_discount": 5.0,
        "loyalty_points": 9100,  # 6000 + 3000 - 3000 + 3100
        "loyalty_points_expiring": 0,
        "loyalty_next_expiry": "2026-08-10",
    },
    "C03": {
        "rfm_recency_days": 161,
        "rfm_frequency": 1,
        "rfm_monetary": 500.0,
        "rfm_score": "112",
        "rfm_segment": "lost",  # R 1, FM floor(4/2) = 2
        "abc_class": "C",
        "xyz_class": "Y",
        "abc_xyz": "CY",
        "demand_cv": 2.236,
        "next_best_offer": "Anvil",
        "kpi_revenue_12m": 500.0,
        "kpi_aov": 500.0,
        "kpi_clv_historic": 500.0,
        "kpi_distinct_products": 1,  # the cancelled Crates and the draft Anvil do not count
        "kpi_purchases_per_year": 1.0,
        "kpi_churn_risk": 0.59,  # one purchase: the median gap (182) -> 1 - exp(-161/182)
        "kpi_overdue_amount": 500.0,  # due 2026-02-19, unpaid
        "kpi_complaints_12m": 1,  # K2 is older than 12 months
        "kpi_opportunities_won": 0,  # counts: 0 for a buyer without any
        "kpi_opportunities_lost": 0,
        "loyalty_tier": "bronze",  # 500 >= 500; bronze sets no payment conditions
        "loyalty_discount": 2.0,
        "loyalty_points": 500,
        "loyalty_points_expiring": 0,
        "loyalty_next_expiry": "2027-01-20",
    },
    "C04": {
        "rfm_recency_days": 486,
        "rfm_frequency": 0,
        "rfm_monetary": 0.0,
        "rfm_score": "111",
        "rfm_segment": "lost",
        "abc_class": "C",  # a buyer with nothing in the window
        "next_best_offer": "Bolt",
        "kpi_revenue_12m": 0.0,
        "kpi_revenue_growth": -100.0,  # 0 against 5000
        "kpi_clv_historic": 5000.0,
        "kpi_distinct_products": 1,
        "kpi_purchases_per_year": 1.05,  # 2 / (698 / 365)
        "kpi_interpurchase_days": 212.0,
        "kpi_churn_risk": 0.9,  # 1 - exp(-486 / 212)
        "kpi_opportunities_won": 0,  # counts: 0 for a buyer without any
        "kpi_opportunities_lost": 0,
        "kpi_complaints_12m": 0,
        "kpi_overdue_amount": 0.0,  # no unpaid invoice
        "loyalty_tier": "member",
        "loyalty_discount": 0.0,  # a member has no discount
        "loyalty_points": 0,
        "loyalty_points_expiring": 0,
    },
    "C05": {
        "rfm_recency_days": 10,
        "rfm_frequency": 1,
        "rfm_monetary": 300.0,
        "rfm_score": "411",
        "rfm_segment": "promising",  # R 4, FM 1
        "abc_class": "C",
        "next_best_offer": "Anvil",
        "kpi_revenue_12m": 300.0,
        "kpi_aov": 300.0,
        "kpi_clv_historic": 300.0,
        "kpi_distinct_products": 1,
        "kpi_purchases_per_year": 1.0,
        "kpi_churn_risk": 0.05,  # 1 - exp(-10 / 182)
        "kpi_overdue_amount": 0.0,
        "kpi_opportunities_won": 0,  # counts: 0 for a buyer without any
        "kpi_opportunities_lost": 0,
        "kpi_complaints_12m": 0,
        "loyalty_tier": "member",
        "loyalty_discount": 0.0,
        "loyalty_points": 300,
        "loyalty_points_expiring": 0,
        "loyalty_next_expiry": "2027-06-20",
    },
    "C06": {
        "kpi_quote_conversion": 50.0,  # Q1 accepted, Q2 refused
        "kpi_opportunities_won": 1,
        "kpi_opportunities_lost": 1,
        "kpi_last_refusal": "2026-03-05 opportunity lost: Price too high",
        "kpi_complaints_12m": 1,
    },
    "C07": {
        "rfm_recency_days": 86,
        "rfm_frequency": 2,
        "rfm_monetary": 2500.0,
        "rfm_score": "233",
        "rfm_segment": "at_risk",  # R 2, FM 3
        "abc_class": "B",
        "xyz_class": "Y",
        "abc_xyz": "BY",
        "demand_cv": 1.918,
        "next_best_offer": "Crate",
        "kpi_revenue_12m": 2500.0,
        "kpi_aov": 1250.0,
        "kpi_clv_historic": 2500.0,
        "kpi_distinct_products": 2,
        "kpi_purchases_per_year": 2.0,
        "kpi_interpurchase_days": 182.0,
        "kpi_churn_risk": 0.38,  # 1 - exp(-86 / 182)
        "kpi_avg_days_late": 15.0,  # I701 paid in full 30 days late (two payments), I702 early
        "kpi_paid_late_share": 50.0,
        "kpi_overdue_amount": 0.0,
        "kpi_opportunities_won": 0,  # counts: 0 for a buyer without any
        "kpi_opportunities_lost": 0,
        "kpi_complaints_12m": 0,
        "loyalty_tier": "bronze",
        "loyalty_discount": 2.0,
        "loyalty_points": 2500,
        "loyalty_points_expiring": 0,
        "loyalty_next_expiry": "2026-10-05",
    },
    "C08": {
        "rfm_recency_days": 5,
        "rfm_frequency": 2,
        "rfm_monetary": 1800.0,
        "rfm_score": "533",
        "rfm_segment": "potential_loyalist",  # R 5, FM 3
        "abc_class": "B",
        "xyz_class": "Y",
        "abc_xyz": "BY",
        "demand_cv": 2.253,
        "next_best_offer": "Crate",
        "kpi_revenue_12m": 1800.0,
        "kpi_aov": 900.0,
        "kpi_clv_historic": 1800.0,
        "kpi_distinct_products": 2,
        "kpi_purchases_per_year": 2.0,
        "kpi_interpurchase_days": 340.0,
        "kpi_churn_risk": 0.01,  # 1 - exp(-5 / 340)
        "kpi_avg_days_late": 0.0,  # I801 paid early; I802 not paid yet
        "kpi_paid_late_share": 0.0,
        "kpi_overdue_amount": 0.0,
        "kpi_opportunities_won": 0,  # counts: 0 for a buyer without any
        "kpi_opportunities_lost": 0,
        "kpi_complaints_12m": 0,
        "loyalty_tier": "bronze",
        "loyalty_discount": 2.0,
        "loyalty_points": 1800,
        "loyalty_points_expiring": 800,  # I801's, on 2026-07-20
        "loyalty_next_expiry": "2026-07-20",
    },
}

# Checked by documented properties, not literals (see tests/test_golden.py):
# kpi_clv_12m (a fitted BG/NBD x Gamma-Gamma model) and loyalty_reason (its numbers;
# C01's word for word against the documented example).
PROPERTY_CHECKED = ("kpi_clv_12m", "loyalty_reason")
