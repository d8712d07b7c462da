"""health advisories: scope, kind, measures, and who issued and lifted them

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "health_advisory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prison_id", sa.Integer(), nullable=False),
        sa.Column(
            "scope",
            sa.Enum("prison", "wing", "inmate", name="scope", native_enum=False, length=16),
            nullable=False,
        ),
        sa.Column("wing_id", sa.Integer(), nullable=True),
        sa.Column("inmate_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "tb_susceptible", "tb_resistant", "tb_unknown", "outbreak",
                name="advisorykind", native_enum=False, length=16,
            ),
            nullable=False,
        ),
        sa.Column("infectious_since", sa.Date(), nullable=True),
        sa.Column("smear_negative_no_cavity", sa.Boolean(), nullable=False),
        sa.Column("inform", sa.Boolean(), nullable=False),
        sa.Column("masks", sa.Boolean(), nullable=False),
        sa.Column("no_high_risk", sa.Boolean(), nullable=False),
        sa.Column("non_contact", sa.Boolean(), nullable=False),
        sa.Column("visit_minutes", sa.Integer(), nullable=True),
        sa.Column("suspended", sa.Boolean(), nullable=False),
        sa.Column("notes", sa.String(length=2000), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "(scope = 'inmate' AND inmate_id IS NOT NULL) OR scope != 'inmate'",
            name=op.f("ck_health_advisory_inmate_scope_names_inmate"),
        ),
        sa.CheckConstraint(
            "(scope = 'wing' AND wing_id IS NOT NULL) OR scope != 'wing'",
            name=op.f("ck_health_advisory_wing_scope_names_wing"),
        ),
        sa.CheckConstraint(
            "visit_minutes IS NULL OR visit_minutes > 0",
            name=op.f("ck_health_advisory_minutes_positive"),
        ),
        sa.ForeignKeyConstraint(
            ["inmate_id"], ["inmate.id"],
            name=op.f("fk_health_advisory_inmate_id_inmate"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prison_id"], ["prison.id"],
            name=op.f("fk_health_advisory_prison_id_prison"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["wing_id"], ["wing.id"],
            name=op.f("fk_health_advisory_wing_id_wing"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_advisory")),
    )
    op.create_index(
        "ix_health_advisory_prison_lifted", "health_advisory", ["prison_id", "lifted_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_health_advisory_prison_lifted", table_name="health_advisory")
    op.drop_table("health_advisory")
