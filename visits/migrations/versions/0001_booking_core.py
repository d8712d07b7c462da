"""booking core: prisons, schedules, slots, inmates, visitors, bookings

Revision ID: 0001
Revises: 
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_entity_id'), ['entity_id'], unique=False)

    op.create_table('prison',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('online_booking', sa.Boolean(), nullable=False),
    sa.Column('languages', sa.String(length=64), nullable=False),
    sa.Column('booking_opens_days', sa.Integer(), nullable=False),
    sa.Column('booking_closes_hours', sa.Integer(), nullable=False),
    sa.Column('max_visitors', sa.Integer(), nullable=False),
    sa.Column('min_adults', sa.Integer(), nullable=False),
    sa.Column('adult_age', sa.Integer(), nullable=False),
    sa.Column('visits_per_inmate_per_week', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('booking_closes_hours >= 0', name=op.f('ck_prison_closes_hours_not_negative')),
    sa.CheckConstraint('booking_opens_days >= 1', name=op.f('ck_prison_opens_days_positive')),
    sa.CheckConstraint('max_visitors >= 1', name=op.f('ck_prison_max_visitors_positive')),
    sa.CheckConstraint('min_adults >= 0', name=op.f('ck_prison_min_adults_not_negative')),
    sa.CheckConstraint('visits_per_inmate_per_week >= 1', name=op.f('ck_prison_weekly_visits_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_prison')),
    sa.UniqueConstraint('code', name=op.f('uq_prison_code'))
    )
    op.create_table('throttle_hit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_throttle_hit'))
    )
    with op.batch_alter_table('throttle_hit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_throttle_hit_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_throttle_hit_key'), ['key'], unique=False)

    op.create_table('visitor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('doc_type', sa.Enum('dni', 'ce', 'passport', name='documenttype', native_enum=False, length=16), nullable=False),
    sa.Column('doc_number', sa.String(length=16), nullable=False),
    sa.Column('first_names', sa.String(length=100), nullable=False),
    sa.Column('last_names', sa.String(length=100), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('sex', sa.Enum('F', 'M', name='sex', native_enum=False, length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visitor')),
    sa.UniqueConstraint('doc_type', 'doc_number', name=op.f('uq_visitor_doc_type_doc_number'))
    )
    op.create_table('closure',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prison_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['prison_id'], ['prison.id'], name=op.f('fk_closure_prison_id_prison'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_closure')),
    sa.UniqueConstraint('prison_id', 'day', 'start_time', name=op.f('uq_closure_prison_id_day_start_time'))
    )
    op.create_table('schedule_template',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prison_id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.Time(), nullable=False),
    sa.Column('end_time', sa.Time(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('visitor_group', sa.Enum('anyone', 'women', 'men', name='visitorgroup', native_enum=False, length=16), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_to', sa.Date(), nullable=True),
    sa.CheckConstraint('capacity >= 0', name=op.f('ck_schedule_template_capacity_not_negative')),
    sa.CheckConstraint('end_time > start_time', name=op.f('ck_schedule_template_ends_after_start')),
    sa.CheckConstraint('valid_to IS NULL OR valid_to >= valid_from', name=op.f('ck_schedule_template_valid_range')),
    sa.CheckConstraint('weekday BETWEEN 0 AND 6', name=op.f('ck_schedule_template_weekday_range')),
    sa.ForeignKeyConstraint(['prison_id'], ['prison.id'], name=op.f('fk_schedule_template_prison_id_prison'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_template'))
    )
    with op.batch_alter_table('schedule_template', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_template_prison_id'), ['prison_id'], unique=False)

    op.create_table('visitor_suspension',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sa.Integer(), nullable=False),
    sa.Column('prison_id', sa.Integer(), nullable=False),
    sa.Column('until', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['prison_id'], ['prison.id'], name=op.f('fk_visitor_suspension_prison_id_prison'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['visitor_id'], ['visitor.id'], name=op.f('fk_visitor_suspension_visitor_id_visitor'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visitor_suspension'))
    )
    op.create_table('wing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prison_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['prison_id'], ['prison.id'], name=op.f('fk_wing_prison_id_prison'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wing')),
    sa.UniqueConstraint('prison_id', 'code', name=op.f('uq_wing_prison_id_code'))
    )
    op.create_table('inmate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prison_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('first_names', sa.String(length=100), nullable=False),
    sa.Column('last_name_1', sa.String(length=100), nullable=False),
    sa.Column('last_name_2', sa.String(length=100), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('wing_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('active', 'transferred', 'released', 'inactive', name='inmatestatus', native_enum=False, length=16), nullable=False),
    sa.Column('visits_suspended_until', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['prison_id'], ['prison.id'], name=op.f('fk_inmate_prison_id_prison'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['wing_id'], ['wing.id'], name=op.f('fk_inmate_wing_id_wing'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inmate')),
    sa.UniqueConstraint('prison_id', 'code', name=op.f('uq_inmate_prison_id_code'))
    )
    op.create_table('slot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prison_id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('seats_taken', sa.Integer(), nullable=False),
    sa.Column('visitor_group', sa.Enum('anyone', 'women', 'men', name='visitorgroup', native_enum=False, length=16), nullable=False),
    sa.CheckConstraint('capacity >= 0', name=op.f('ck_slot_capacity_not_negative')),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_slot_ends_after_start')),
    sa.CheckConstraint('seats_taken <= capacity', name=op.f('ck_slot_seats_within_capacity')),
    sa.CheckConstraint('seats_taken >= 0', name=op.f('ck_slot_seats_not_negative')),
    sa.ForeignKeyConstraint(['prison_id'], ['prison.id'], name=op.f('fk_slot_prison_id_prison'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['template_id'], ['schedule_template.id'], name=op.f('fk_slot_template_id_schedule_template'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slot')),
    sa.UniqueConstraint('prison_id', 'starts_at', name=op.f('uq_slot_prison_id_starts_at'))
    )
    with op.batch_alter_table('slot', schema=None) as batch_op:
        batch_op.create_index('ix_slot_prison_day', ['prison_id', 'local_date'], unique=False)

    op.create_table('booking',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=8), nullable=False),
    sa.Column('prison_id', sa.Integer(), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('inmate_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('held', 'confirmed', 'attended', 'no_show', 'cancelled', name='bookingstatus', native_enum=False, length=16), nullable=False),
    sa.Column('party_size', sa.Integer(), nullable=False),
    sa.Column('contact_phone', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('submission_key', sa.String(length=64), nullable=True),
    sa.Column('hold_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('party_size >= 1', name=op.f('ck_booking_party_not_empty')),
    sa.ForeignKeyConstraint(['inmate_id'], ['inmate.id'], name=op.f('fk_booking_inmate_id_inmate')),
    sa.ForeignKeyConstraint(['prison_id'], ['prison.id'], name=op.f('fk_booking_prison_id_prison')),
    sa.ForeignKeyConstraint(['slot_id'], ['slot.id'], name=op.f('fk_booking_slot_id_slot')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking')),
    sa.UniqueConstraint('reference', name=op.f('uq_booking_reference')),
    sa.UniqueConstraint('submission_key', name=op.f('uq_booking_submission_key'))
    )
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.create_index('ix_booking_inmate_status', ['inmate_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_booking_slot_id'), ['slot_id'], unique=False)

    op.create_table('booking_visitor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('visitor_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('first_names', sa.String(length=100), nullable=False),
    sa.Column('last_names', sa.String(length=100), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('relationship', sa.Enum('partner', 'parent', 'child', 'sibling', 'grandparent', 'grandchild', 'other_relative', 'friend', name='relationship', native_enum=False, length=16), nullable=False),
    sa.Column('sex', sa.Enum('F', 'M', name='sex', native_enum=False, length=16), nullable=True),
    sa.Column('visit_date', sa.Date(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['booking_id'], ['booking.id'], name=op.f('fk_booking_visitor_booking_id_booking'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['visitor_id'], ['visitor.id'], name=op.f('fk_booking_visitor_visitor_id_visitor')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_visitor')),
    sa.UniqueConstraint('booking_id', 'visitor_id', name=op.f('uq_booking_visitor_booking_id_visitor_id'))
    )
    with op.batch_alter_table('booking_visitor', schema=None) as batch_op:
        batch_op.create_index('uq_booking_visitor_one_visit_a_day', ['visitor_id', 'visit_date'], unique=True, sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))



def downgrade() -> None:
    with op.batch_alter_table('booking_visitor', schema=None) as batch_op:
        batch_op.drop_index('uq_booking_visitor_one_visit_a_day', sqlite_where=sa.text('active'), postgresql_where=sa.text('active'))

    op.drop_table('booking_visitor')
    with op.batch_alter_table('booking', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_booking_slot_id'))
        batch_op.drop_index('ix_booking_inmate_status')

    op.drop_table('booking')
    with op.batch_alter_table('slot', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_prison_day')

    op.drop_table('slot')
    op.drop_table('inmate')
    op.drop_table('wing')
    op.drop_table('visitor_suspension')
    with op.batch_alter_table('schedule_template', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_template_prison_id'))

    op.drop_table('schedule_template')
    op.drop_table('closure')
    op.drop_table('visitor')
    with op.batch_alter_table('throttle_hit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_throttle_hit_key'))
        batch_op.drop_index(batch_op.f('ix_throttle_hit_at'))

    op.drop_table('throttle_hit')
    op.drop_table('prison')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_entity_id'))
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))

    op.drop_table('audit_event')
